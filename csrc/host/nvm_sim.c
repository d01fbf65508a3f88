/*
 * edgetrain — host-only NVM emulator HAL (see et_nvm_sim.h for the model).
 */
#include <string.h>

#include "et_nvm_sim.h"

static uint32_t sim_next(et_nvm_sim_t *sim)
{
    uint32_t x = sim->prng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    sim->prng = x;
    return x;
}

static void sim_seed(et_nvm_sim_t *sim, uint32_t seed)
{
    /* murmur3 finaliser so that neighbouring seeds give unrelated streams */
    uint32_t h = seed;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    sim->prng = h != 0 ? h : 0x9E3779B9u;
}

static uint32_t popcount8(uint8_t v)
{
    uint32_t n = 0;
    while (v != 0) {
        v &= (uint8_t)(v - 1);
        n++;
    }
    return n;
}

static void inc_sat(uint32_t *v)
{
    if (*v != UINT32_MAX) {
        *v += 1;
    }
}

static void add_sat(uint32_t *v, uint32_t n)
{
    *v = *v > UINT32_MAX - n ? UINT32_MAX : *v + n;
}

uint32_t et_nvm_sim_endurance(uint16_t code)
{
    uint32_t e = (uint32_t)code >> 11;
    if (e == 0) {
        return code;
    }
    if (e >= 22) {
        return UINT32_MAX;
    }
    return (2048u + (code & 0x7FFu)) << (e - 1);
}

static int is_pow2(uint32_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static int config_valid(const et_nvm_sim_config_t *cfg)
{
    if (cfg->size == 0 || cfg->program_unit == 0 || cfg->program_unit > 4096 || !is_pow2(cfg->program_unit) ||
        cfg->size % cfg->program_unit != 0 || cfg->wear > ET_SIM_WEAR_STUCK_PATTERN ||
        cfg->energy_basis > ET_SIM_ENERGY_PER_FLIP) {
        return 0;
    }
    if (cfg->cell == ET_SIM_CELL_INPLACE) {
        return cfg->erase_unit == 0;
    }
    if (cfg->cell == ET_SIM_CELL_FLASH) {
        return cfg->erase_unit >= cfg->program_unit && cfg->erase_unit % cfg->program_unit == 0 &&
               cfg->size % cfg->erase_unit == 0;
    }
    return 0;
}

et_status_t et_nvm_sim_wear_units(const et_nvm_sim_config_t *cfg, uint32_t *units)
{
    if (cfg == NULL || units == NULL || !config_valid(cfg)) {
        return ET_ERR_ARG;
    }
    *units = cfg->cell == ET_SIM_CELL_FLASH ? cfg->size / cfg->erase_unit : cfg->size;
    return ET_OK;
}

/* Power-loss countdown: 1 when this operation is the one that fails. */
static int sim_tick(et_nvm_sim_t *sim)
{
    if (sim->powerloss_countdown == 0) {
        return 0;
    }
    sim->powerloss_countdown -= 1;
    return sim->powerloss_countdown == 0;
}

/* How a device operation ended: power lost mid-way (the device stays off until a reboot), a cell
 * that did not take its value (verify-after-write), or done. */
static et_status_t sim_outcome(et_nvm_sim_t *sim, int torn, int worn)
{
    if (torn) {
        sim->powered = 0;
        sim->totals->power_losses += 1;
        return ET_ERR_IO;
    }
    if (worn) {
        sim->totals->worn_reports += 1;
        return ET_ERR_WORN;
    }
    return ET_OK;
}

static et_status_t sim_program(et_nvm_t *nvm, uint32_t offset, const uint8_t *data, uint32_t len)
{
    et_nvm_sim_t *sim;
    const et_nvm_sim_config_t *cfg;
    uint8_t *mem;
    uint8_t *stuck;
    uint32_t i;
    uint32_t cut;
    uint32_t end = len;
    uint32_t touched = 0;
    uint32_t flips = 0;
    int torn;
    int worn = 0;
    int flash;
    if (nvm == NULL || nvm->ctx == NULL || data == NULL) {
        return ET_ERR_ARG;
    }
    sim = (et_nvm_sim_t *)nvm->ctx;
    cfg = &sim->cfg;
    if (!sim->powered) {
        return ET_ERR_IO;
    }
    if (len == 0 || offset % cfg->program_unit != 0 || len % cfg->program_unit != 0 || offset > cfg->size ||
        len > cfg->size - offset) {
        return ET_ERR_ARG;
    }
    flash = cfg->cell == ET_SIM_CELL_FLASH;
    mem = sim->buf.mem + offset;
    stuck = sim->buf.stuck + offset;
    if (flash) {
        int only_stuck = 1;
        for (i = 0; i < len; i++) {
            uint8_t rise = (uint8_t)(data[i] & (uint8_t)~mem[i]); /* bits asked to go 0 -> 1 */
            if ((rise & (uint8_t)~stuck[i]) != 0) {
                only_stuck = 0;
                break;
            }
        }
        if (!only_stuck) {
            sim->totals->rejected_programs += 1;
            return ET_ERR_ARG;
        }
    }
    /* One device operation per program unit, in address order: the countdown
     * ticks per unit and a power loss tears the unit it strikes. */
    torn = 0;
    cut = len;
    for (i = 0; i < len && !torn; i += cfg->program_unit) {
        sim->totals->device_ops += 1;
        if (sim_tick(sim)) {
            torn = 1;
            cut = i + sim_next(sim) % (cfg->program_unit + 1);
            end = i + cfg->program_unit;
        }
    }
    if (!torn) {
        end = len;
    }
    for (i = 0; i < end; i++) {
        uint8_t old = mem[i];
        uint8_t target = flash ? (uint8_t)(old & data[i]) : data[i];
        uint8_t want;
        uint8_t final;
        if (i < cut) {
            want = target;
        } else if (flash) {
            /* a random subset of the bits this program would clear is cleared */
            uint8_t clear = (uint8_t)(old & (uint8_t)~target & (uint8_t)sim_next(sim));
            want = (uint8_t)(old & (uint8_t)~clear);
        } else if (i == cut) {
            uint8_t mix = (uint8_t)sim_next(sim);
            want = (uint8_t)((target & mix) | (old & (uint8_t)~mix));
        } else {
            want = old;
        }
        if (flash ? (i >= cut && want == old) : i > cut) {
            continue; /* not reached by the interrupted operation */
        }
        final = (uint8_t)((want & (uint8_t)~stuck[i]) | (old & stuck[i]));
        if (!flash) {
            uint32_t *wear = &sim->buf.wear[offset + i];
            inc_sat(wear);
            if (*wear > et_nvm_sim_endurance(sim->buf.endurance[offset + i]) && stuck[i] != 0xFF) {
                stuck[i] = 0xFF;
                sim->totals->cells_worn += 1;
                final = cfg->wear == ET_SIM_WEAR_STUCK_PATTERN ? cfg->stuck_pattern : old;
            }
        }
        if (i < cut && final != data[i]) {
            worn = 1;
        }
        flips += popcount8((uint8_t)(final ^ old));
        add_sat(&sim->buf.flips[offset + i], popcount8((uint8_t)(final ^ old)));
        mem[i] = final;
        inc_sat(&sim->buf.writes[offset + i]);
        touched++;
    }
    sim->totals->program_calls += 1;
    sim->totals->bytes_programmed += touched;
    sim->totals->bits_flipped += flips;
    sim->totals->energy_fj +=
        cfg->program_fj_per_bit * (cfg->energy_basis == ET_SIM_ENERGY_PER_FLIP ? flips : 8u * (uint64_t)touched);
    sim->totals->busy_ns +=
        cfg->program_ns_per_unit * (((uint64_t)touched + cfg->program_unit - 1) / cfg->program_unit);
    return sim_outcome(sim, torn, worn);
}

static et_status_t sim_erase(et_nvm_t *nvm, uint32_t offset, uint32_t len)
{
    et_nvm_sim_t *sim;
    const et_nvm_sim_config_t *cfg;
    uint32_t eu;
    uint32_t n_units;
    uint32_t u;
    uint32_t cut;
    int torn;
    int worn = 0;
    if (nvm == NULL || nvm->ctx == NULL) {
        return ET_ERR_ARG;
    }
    sim = (et_nvm_sim_t *)nvm->ctx;
    cfg = &sim->cfg;
    if (!sim->powered) {
        return ET_ERR_IO;
    }
    eu = cfg->erase_unit;
    if (cfg->cell != ET_SIM_CELL_FLASH || len == 0 || offset % eu != 0 || len % eu != 0 || offset > cfg->size ||
        len > cfg->size - offset) {
        return ET_ERR_ARG;
    }
    n_units = len / eu;
    torn = 0;
    cut = n_units;
    for (u = 0; u < n_units && !torn; u++) {
        sim->totals->device_ops += 1;
        if (sim_tick(sim)) {
            torn = 1;
            cut = u;
        }
    }
    for (u = 0; u < n_units && u <= cut; u++) {
        uint32_t first = offset + u * eu;
        uint32_t unit = first / eu;
        uint32_t *wear = &sim->buf.wear[unit];
        int partial = u == cut;
        int dies;
        uint32_t i;
        inc_sat(wear);
        dies = *wear > et_nvm_sim_endurance(sim->buf.endurance[unit]);
        for (i = first; i < first + eu; i++) {
            uint8_t old = sim->buf.mem[i];
            uint8_t want = cfg->erased_value;
            uint8_t final;
            if (partial) {
                uint8_t move = (uint8_t)((old ^ cfg->erased_value) & (uint8_t)sim_next(sim));
                want = (uint8_t)((old & (uint8_t)~move) | (cfg->erased_value & move));
            }
            if (dies && sim->buf.stuck[i] != 0xFF) {
                sim->buf.stuck[i] = 0xFF;
                sim->totals->cells_worn += 1;
                final = cfg->wear == ET_SIM_WEAR_STUCK_PATTERN ? cfg->stuck_pattern : old;
            } else {
                final = (uint8_t)((want & (uint8_t)~sim->buf.stuck[i]) | (old & sim->buf.stuck[i]));
            }
            if (!partial && final != cfg->erased_value) {
                worn = 1;
            }
            sim->totals->bits_flipped += popcount8((uint8_t)(final ^ old));
            add_sat(&sim->buf.flips[i], popcount8((uint8_t)(final ^ old)));
            sim->buf.mem[i] = final;
        }
        sim->totals->bytes_erased += eu;
        sim->totals->energy_fj += cfg->erase_fj_per_unit;
        sim->totals->busy_ns += cfg->erase_ns_per_unit;
    }
    sim->totals->erase_calls += 1;
    return sim_outcome(sim, torn, worn);
}

/* Zero n bytes, writing only the 4 KiB blocks that are not zero already: a caller's freshly
 * mapped zero pages are read, never dirtied, so counters of cells never programmed cost no memory. */
static void zero(void *p, size_t n)
{
    uint8_t *b = (uint8_t *)p;
    size_t at;
    for (at = 0; at < n; at += 4096) {
        size_t len = n - at < 4096 ? n - at : 4096;
        size_t i;
        for (i = 0; i < len && b[at + i] == 0; i++) {
        }
        if (i < len) {
            memset(b + at, 0, len);
        }
    }
}

et_status_t et_nvm_sim_init(et_nvm_sim_t *sim, et_nvm_t *nvm, const et_nvm_sim_config_t *cfg,
                            const et_nvm_sim_buffers_t *buf, et_nvm_sim_totals_t *totals)
{
    uint32_t units;
    if (sim == NULL || nvm == NULL || cfg == NULL || buf == NULL || totals == NULL || buf->mem == NULL ||
        buf->writes == NULL || buf->flips == NULL || buf->wear == NULL || buf->endurance == NULL || buf->stuck == NULL) {
        return ET_ERR_ARG;
    }
    if (et_nvm_sim_wear_units(cfg, &units) != ET_OK) {
        return ET_ERR_ARG;
    }
    memset(sim, 0, sizeof(*sim));
    sim->cfg = *cfg;
    sim->buf = *buf;
    sim->totals = totals;
    sim->powered = 1;
    sim_seed(sim, cfg->seed);
    memset(totals, 0, sizeof(*totals));
    zero(buf->writes, (size_t)cfg->size * sizeof(uint32_t));
    zero(buf->flips, (size_t)cfg->size * sizeof(uint32_t));
    zero(buf->stuck, (size_t)cfg->size);
    zero(buf->wear, (size_t)units * sizeof(uint32_t));
    nvm->base = buf->mem;
    nvm->size = cfg->size;
    nvm->program_unit = cfg->program_unit;
    nvm->erase_unit = cfg->cell == ET_SIM_CELL_FLASH ? cfg->erase_unit : 0;
    nvm->erased_value = cfg->erased_value;
    nvm->program = sim_program;
    nvm->erase = cfg->cell == ET_SIM_CELL_FLASH ? sim_erase : NULL;
    nvm->ctx = sim;
    return ET_OK;
}

et_status_t et_nvm_sim_set_powerloss(et_nvm_sim_t *sim, uint64_t ops)
{
    if (sim == NULL) {
        return ET_ERR_ARG;
    }
    sim->powerloss_countdown = ops;
    return ET_OK;
}

et_status_t et_nvm_sim_reboot(et_nvm_sim_t *sim)
{
    if (sim == NULL) {
        return ET_ERR_ARG;
    }
    sim->powered = 1;
    sim->powerloss_countdown = 0;
    return ET_OK;
}

et_status_t et_nvm_sim_powered(const et_nvm_sim_t *sim, uint8_t *powered)
{
    if (sim == NULL || powered == NULL) {
        return ET_ERR_ARG;
    }
    *powered = sim->powered;
    return ET_OK;
}
