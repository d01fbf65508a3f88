/*
 * edgetrain — the CRC-32 register steps as static inline functions, private to
 * csrc/src: crc.c builds et_crc32 and et_crc32_xor from them, and the commit
 * (commit.c) runs them inside its compare loop, so that the difference of the
 * new rows and the active bank is read once for both.
 *
 * The register is the CRC's internal state: ~crc while a CRC is running
 * (et_crc.h's functions invert on the way in and out). Words hold bytes in
 * little-endian order (the first byte in bits 0..7) on any target.
 */
#ifndef EDGETRAIN_CRC_INTERNAL_H
#define EDGETRAIN_CRC_INTERNAL_H

#include <stdint.h>

#include "edgetrain/et_crc.h"
#include "hot_internal.h"

#if ET_CRC_SLICE != 4 && ET_CRC_SLICE != 8
#error "ET_CRC_SLICE must be 4 or 8"
#endif

/* et_crc32_tab[k][v]: the register after the byte v followed by k zero bytes (crc.c). */
extern const uint32_t et_crc32_tab[ET_CRC_SLICE][256];

static inline uint32_t et_crc32_load32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t et_crc32_load64(const uint8_t *p)
{
    return (uint64_t)et_crc32_load32(p) | ((uint64_t)et_crc32_load32(p + 4) << 32);
}

/* The register after one byte. */
static inline uint32_t et_crc32_reg1(uint32_t reg, uint32_t byte)
{
    return (reg >> 8) ^ et_crc32_tab[0][(reg ^ byte) & 0xFFu];
}

/* The register after the four bytes of w. */
static inline uint32_t et_crc32_reg4(uint32_t reg, uint32_t w)
{
    reg ^= w;
    return et_crc32_tab[3][reg & 0xFFu] ^ et_crc32_tab[2][(reg >> 8) & 0xFFu] ^ et_crc32_tab[1][(reg >> 16) & 0xFFu] ^
           et_crc32_tab[0][reg >> 24];
}

/* The register after eight bytes: lo the first four, hi the next four. */
static inline uint32_t et_crc32_reg8(uint32_t reg, uint32_t lo, uint32_t hi)
{
#if ET_CRC_SLICE == 8
    reg ^= lo;
    return et_crc32_tab[7][reg & 0xFFu] ^ et_crc32_tab[6][(reg >> 8) & 0xFFu] ^ et_crc32_tab[5][(reg >> 16) & 0xFFu] ^
           et_crc32_tab[4][reg >> 24] ^ et_crc32_tab[3][hi & 0xFFu] ^ et_crc32_tab[2][(hi >> 8) & 0xFFu] ^
           et_crc32_tab[1][(hi >> 16) & 0xFFu] ^ et_crc32_tab[0][hi >> 24];
#else
    return et_crc32_reg4(et_crc32_reg4(reg, lo), hi);
#endif
}

/* The register after eight zero bytes: the register's own four lookups, no input (with slice-by-4,
 * two four-byte steps without input). */
static inline uint32_t et_crc32_reg8_zero(uint32_t reg)
{
#if ET_CRC_SLICE == 8
    return et_crc32_tab[7][reg & 0xFFu] ^ et_crc32_tab[6][(reg >> 8) & 0xFFu] ^ et_crc32_tab[5][(reg >> 16) & 0xFFu] ^
           et_crc32_tab[4][reg >> 24];
#else
    reg = et_crc32_tab[3][reg & 0xFFu] ^ et_crc32_tab[2][(reg >> 8) & 0xFFu] ^ et_crc32_tab[1][(reg >> 16) & 0xFFu] ^
          et_crc32_tab[0][reg >> 24];
    return et_crc32_tab[3][reg & 0xFFu] ^ et_crc32_tab[2][(reg >> 8) & 0xFFu] ^ et_crc32_tab[1][(reg >> 16) & 0xFFu] ^
           et_crc32_tab[0][reg >> 24];
#endif
}

/* The register after the eight bytes of d (d = 0: eight zero bytes, the cheaper step). */
static inline uint32_t et_crc32_reg8_word(uint32_t reg, uint64_t d)
{
    if (d == 0) {
        return et_crc32_reg8_zero(reg);
    }
    return et_crc32_reg8(reg, (uint32_t)d, (uint32_t)(d >> 32));
}

/*
 * x86-64 hosts with the clones (hot_internal.h) also get a carry-less multiply path for long inputs:
 * the register after the len bytes of a (b NULL) or of a XOR b (crc.c), the same value as the table
 * steps, picked where the CPU has PCLMULQDQ (asked per call). -DET_NO_CLMUL leaves it out.
 */
#if ET_HOST_WIDE && !defined(ET_NO_CLMUL)
#define ET_HOST_CLMUL 1
#define ET_CRC32_CLMUL_MIN 64 /* shorter inputs take the table steps */
static inline int et_host_clmul(void)
{
    return __builtin_cpu_supports("pclmul") != 0;
}
uint32_t et_crc32_reg_clmul(uint32_t reg, const uint8_t *a, const uint8_t *b, uint32_t len);
#else
#define ET_HOST_CLMUL 0
#endif

#endif /* EDGETRAIN_CRC_INTERNAL_H */
