"""Host-side firmware emulator: an MCU memory map whose NVM regions account for
every write (per-cell counts, bits flipped, energy, endurance, power loss)."""
