/*
 * The whole C call sequence on one .etm blob, for the sanitizer driver (drive_etm.c) and the
 * libFuzzer target (tests/fuzz/fuzz_etm.c): parse -> plan -> init -> steps -> checkpoint ->
 * init again over the same NVM (recovery) -> predict, under three optimizers.
 */
#ifndef EDGETRAIN_TESTS_DRIVE_H
#define EDGETRAIN_TESTS_DRIVE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t arena_cap; /* plans above this many bytes are not run (counted in `capped`) */
    uint32_t steps;     /* training steps per optimizer */
    uint8_t every_optimizer; /* 1: SGD, LRT and bias training in turn; 0: one of them, picked by the blob's CRC */
} drive_opts_t;

typedef struct {
    uint32_t rejected; /* blobs the parser refused (a clean status, outputs untouched) */
    uint32_t trained;  /* optimizer runs that went through every step */
    uint32_t capped;   /* optimizer runs skipped: plan above arena_cap or unplannable (ET_ERR_RANGE) */
    uint32_t refused;  /* optimizer runs init refused with a documented status (e.g. too many tensors) */
} drive_counts_t;

/*
 * Drive one blob. Any contract violation (an undocumented status, outputs written on failure, a
 * failed step on a model the parser accepted) aborts, so that a sanitizer or fuzzer reports it.
 */
void drive_blob(const uint8_t *data, size_t size, const drive_opts_t *opts, drive_counts_t *counts);

#endif /* EDGETRAIN_TESTS_DRIVE_H */
