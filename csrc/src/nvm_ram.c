/*
 * edgetrain — plain-memory NVM HAL: writes land in a RAM buffer and are
 * counted. Used by host tests and by firmware that keeps a model in RAM.
 */
#include <string.h>

#include "edgetrain/et_nvm.h"

/* The region is caller-owned writable memory; base is its read view. */
static uint8_t *et_nvm_ram_mem(et_nvm_t *nvm)
{
    return (uint8_t *)(uintptr_t)nvm->base;
}

static et_status_t et_nvm_ram_program(et_nvm_t *nvm, uint32_t offset, const uint8_t *data, uint32_t len)
{
    et_nvm_ram_stats_t *stats;
    uint8_t *mem;
    uint32_t i;
    uint32_t changed = 0;
    if (nvm == NULL || data == NULL || nvm->ctx == NULL || (uint64_t)offset + len > nvm->size) {
        return ET_ERR_ARG;
    }
    stats = (et_nvm_ram_stats_t *)nvm->ctx;
    mem = et_nvm_ram_mem(nvm) + offset;
    /* The counters are updated apart (one before the loop, two after it) and changed bytes are
     * counted in a local: runs are a few bytes long, and together the updates compile to vector
     * code that costs more than the bytes themselves. */
    stats->bytes_programmed += len;
    for (i = 0; i < len; i++) {
        uint8_t v = data[i];
        if (mem[i] != v) { /* an equal byte keeps its value: storing it would change nothing */
            changed += 1;
            mem[i] = v;
        }
    }
    stats->bytes_changed += changed;
    stats->program_calls += 1;
    return ET_OK;
}

static et_status_t et_nvm_ram_erase(et_nvm_t *nvm, uint32_t offset, uint32_t len)
{
    et_nvm_ram_stats_t *stats;
    if (nvm == NULL || nvm->ctx == NULL || offset > nvm->size || len > nvm->size - offset) {
        return ET_ERR_ARG;
    }
    stats = (et_nvm_ram_stats_t *)nvm->ctx;
    memset(et_nvm_ram_mem(nvm) + offset, nvm->erased_value, len);
    stats->erase_calls += 1;
    return ET_OK;
}

et_status_t et_nvm_ram_init(et_nvm_t *nvm, uint8_t *mem, uint32_t size, et_nvm_ram_stats_t *stats)
{
    if (nvm == NULL || mem == NULL || stats == NULL || size == 0) {
        return ET_ERR_ARG;
    }
    memset(stats, 0, sizeof(*stats));
    nvm->base = mem;
    nvm->size = size;
    nvm->program_unit = 1;
    nvm->erase_unit = 0;
    nvm->erased_value = 0xFF;
    nvm->program = et_nvm_ram_program;
    nvm->erase = et_nvm_ram_erase;
    nvm->ctx = stats;
    return ET_OK;
}
