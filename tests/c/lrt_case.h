/*
 * What the accumulator test drivers (lrt_digest.c, lrt_early.c) share: one accumulator under test
 * laid out in a caller's buffer in the order the API documents (config, sizes, state, scratch),
 * with room for one term after it.
 */
#ifndef EDGETRAIN_TESTS_LRT_CASE_H
#define EDGETRAIN_TESTS_LRT_CASE_H

#include <stddef.h>
#include <stdint.h>

#include "edgetrain/edgetrain.h"

typedef struct {
    et_lrt_config_t cfg;
    et_lrt_state_t *st;
    size_t st_size;
    unsigned char *scratch;
    size_t scr_size;
    int8_t *delta; /* n bytes */
    uint8_t *x;    /* m bytes; free space follows */
} lrt_case_t;

/* 0 when the state is initialised at mem (parts 64-byte aligned), 1 when a size or the init failed. */
static inline int lrt_case_init(lrt_case_t *c, unsigned char *mem, uint32_t n, uint32_t m, uint32_t rank, int unbiased,
                                uint32_t kappa)
{
    c->st = NULL;
    c->st_size = 0;
    c->scr_size = 0;
    (void)et_lrt_config_default(&c->cfg);
    c->cfg.rank = (uint8_t)rank;
    c->cfg.unbiased = (uint8_t)unbiased;
    c->cfg.kappa_th = kappa;
    if (et_lrt_state_get_size(n, m, rank, &c->st_size) != ET_OK ||
        et_lrt_accumulate_get_buffer_size(n, m, rank, &c->scr_size) != ET_OK) {
        return 1;
    }
    c->scratch = mem + ((c->st_size + 63) & ~(size_t)63);
    c->delta = (int8_t *)(c->scratch + ((c->scr_size + 63) & ~(size_t)63));
    c->x = (uint8_t *)(c->delta + n);
    return et_lrt_state_init(mem, c->st_size, n, m, ET_LRT_DENSE, &c->cfg, &c->st) != ET_OK;
}

#endif /* EDGETRAIN_TESTS_LRT_CASE_H */
