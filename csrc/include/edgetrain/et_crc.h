/*
 * edgetrain — CRC-32 for stored data (model images, NVM records).
 *
 * The CRC is the common CRC-32 of Ethernet, zlib and PNG: reflected
 * polynomial 0xEDB88320, initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF.
 * Its check value (the CRC of the nine ASCII bytes "123456789") is
 * 0xCBF43926. The core computes it eight bytes at a time from eight 256-entry
 * tables ("slice-by-8": 8 KiB of constant data). A firmware short of flash may
 * build with ET_CRC_SLICE=4: four tables (4 KiB), four bytes at a time. Both
 * give the same CRCs; docs/performance.md has the costs.
 *
 * Twin: edgetrain/reference/crc.py.
 */
#ifndef EDGETRAIN_ET_CRC_H
#define EDGETRAIN_ET_CRC_H

#include <stdint.h>

#include "et_status.h"

/* Tables of the CRC (4 or 8; each 1 KiB): bytes taken at a time. */
#ifndef ET_CRC_SLICE
#define ET_CRC_SLICE 8
#endif

/* The CRC-32 of "123456789": the catalogue check value of this CRC. */
#define ET_CRC32_CHECK 0xCBF43926

/*
 * Extend a running CRC-32 by len bytes: *crc holds the CRC of the bytes seen
 * so far (0 before the first byte) and is replaced by the CRC of those bytes
 * followed by data[0..len). So crc(a then b) == crc(b) continued from crc(a),
 * and a whole buffer is one call starting from 0.
 * ET_ERR_ARG when crc is NULL or data is NULL with len > 0 (*crc unchanged).
 */
et_status_t et_crc32(uint32_t *crc, const uint8_t *data, uint32_t len);

/*
 * Combine: *crc holds crc(a) and becomes crc(a then b), given crc2 = crc(b)
 * and len2 = the length of b, without reading b (at most 32 GF(2)
 * polynomial products, whatever len2). CRC-32 is affine over GF(2): for
 * messages of one length, crc(x XOR y) = crc(x) XOR crc(y) XOR crc(zeros), and
 * with crc2 = 0 this is the operator that carries a register over len2 zero
 * bytes. ET_ERR_ARG when crc is NULL (nothing changed).
 */
et_status_t et_crc32_combine(uint32_t *crc, uint32_t crc2, uint32_t len2);

/*
 * Extend a running CRC-32 like et_crc32 by the len bytes a[i] XOR b[i], without
 * forming them: the CRC of the difference of two buffers. Eight bytes in which
 * a and b agree cost only the register's own table lookups. ET_ERR_ARG when crc
 * is NULL or a or b is NULL with len > 0 (*crc unchanged).
 */
et_status_t et_crc32_xor(uint32_t *crc, const uint8_t *a, const uint8_t *b, uint32_t len);

#endif /* EDGETRAIN_ET_CRC_H */
