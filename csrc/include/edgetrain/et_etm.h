/*
 * edgetrain — the .etm model blob: parse and validate in place.
 *
 * A .etm blob carries a whole model: a header, the layer table, one
 * descriptor per tensor, a name and a provenance string, the tensor image
 * (every tensor aligned to the NVM program unit) and a CRC-32 of everything
 * before it. docs/model-format.md is the specification; every field below is
 * little-endian.
 *
 *   offset 0               header (64 bytes)
 *          64              layer records (32 bytes each, n_layers)
 *          64 + 32 L       tensor descriptors (20 bytes each, n_tensors)
 *          ...             strings: name, provenance, one name per layer, each NUL-terminated
 *          ...             zero padding up to image_offset (a multiple of align)
 *          image_offset    tensor image (image_size bytes, a multiple of align)
 *          blob_size - 4   CRC-32 of bytes [0, blob_size - 4)
 *
 * et_etm_parse fills an et_model_t whose `image` points into the blob: nothing
 * is copied or allocated, so the tensors are read where they lie (NVM).
 *
 * Twin: edgetrain/model/etm.py (writer and reader).
 */
#ifndef EDGETRAIN_ET_ETM_H
#define EDGETRAIN_ET_ETM_H

#include <stdint.h>

#include "et_model.h"
#include "et_status.h"

/* The four magic bytes: 0x89 'E' 'T' 'M' (read as a little-endian uint32). */
#define ET_ETM_MAGIC 0x4D544589
/* The one format version this build reads and writes. */
#define ET_ETM_VERSION 1

#define ET_ETM_HEADER_BYTES 64
#define ET_ETM_LAYER_BYTES 32
#define ET_ETM_TENSOR_BYTES 20
#define ET_ETM_TRAILER_BYTES 4

/* Most tensor descriptors: weights, bias and batch-norm block for each of ET_MAX_LAYERS layers. */
#define ET_ETM_MAX_TENSORS 96
/* Longest model or layer name, and longest provenance string, in bytes (without the NUL). */
#define ET_ETM_MAX_NAME 63
#define ET_ETM_MAX_PROVENANCE 4095
/* Tensor alignment (the NVM program unit): a power of two in this range, in bytes. */
#define ET_ETM_MIN_ALIGN 2
#define ET_ETM_MAX_ALIGN 65536

/* Tensor index meaning "this layer has no such tensor". */
#define ET_ETM_NO_TENSOR 0xFFFF

/* Descriptor roles, one per tensor slot of a layer. */
typedef enum {
    ET_ETM_ROLE_WEIGHTS = 1, /* int8, ET_FMT_WEIGHT: conv [out_c][k][k][in_c], dense [n][m] */
    ET_ETM_ROLE_BIAS = 2,    /* int16, ET_FMT_BIAS: [out_c] */
    ET_ETM_ROLE_BN = 3       /* int16 [4][c]: gamma, beta, mean in ET_FMT_BIAS, mean square in
                                ET_FMT_BN_SQ; the descriptor's format is ET_FMT_BIAS */
} et_etm_role_t;

/*
 * Flags of et_etm_parse. ET_ETM_SKIP_BLOB_CRC skips the CRC over the whole blob
 * (the header and metadata CRCs are still checked): a boot-time shortcut for a
 * blob whose full check already passed once, e.g. when it was installed.
 */
#define ET_ETM_SKIP_BLOB_CRC 1

/* What et_etm_parse learned besides the model table. Strings point into the blob. */
typedef struct {
    uint16_t version;        /* format version (ET_ETM_VERSION) */
    uint16_t n_layers;       /* layers (as in the model table) */
    uint16_t n_tensors;      /* tensor descriptors */
    uint32_t blob_size;      /* bytes of the blob, trailer included (<= the size passed in) */
    uint32_t align;          /* tensor alignment in bytes (the NVM program unit it was written for) */
    uint32_t image_offset;   /* where the tensor image starts, from the blob start */
    uint32_t image_size;     /* bytes of the tensor image */
    uint32_t blob_crc;       /* the stored whole-blob CRC-32 */
    const char *name;        /* model name, NUL-terminated printable ASCII */
    const char *provenance;  /* provenance string, NUL-terminated printable ASCII */
    const char *layer_names; /* n_layers NUL-terminated names back to back (see et_etm_layer_name) */
} et_etm_info_t;

/*
 * Parse and validate a .etm blob of `size` bytes (size may exceed the blob,
 * e.g. the whole NVM partition; the header says where the blob ends).
 *
 * Checks, in this order, stopping at the first failure:
 *   magic; version (ET_ERR_VERSION for any other than ET_ETM_VERSION); the
 *   header CRC; header fields and their ranges; the blob is not truncated;
 *   the metadata CRC; the whole-blob CRC (unless ET_ETM_SKIP_BLOB_CRC); the
 *   strings and padding; the layer records and each tensor descriptor
 *   (canonical order, role, format, shape against byte count, alignment,
 *   inside the image); then the whole table with et_model_check (kinds,
 *   shapes that chain, tensors where the kind needs them, no overlaps); and
 *   last that each descriptor's shape is the one its layer needs.
 *
 * Returns ET_OK and fills *model (image pointing into the blob) and, when
 * info is not NULL, *info. ET_ERR_ARG for NULL blob or model, or unknown
 * flags; ET_ERR_VERSION for another format version; ET_ERR_UNSUPPORTED for a
 * layer kind, activation, padding or numeric format this build does not
 * implement; ET_ERR_CORRUPT for everything else (bad magic, CRC mismatch,
 * truncation, out-of-range or misaligned offsets and sizes, overlapping
 * tensors, shapes that do not chain). On failure nothing is written except,
 * when bad_offset is not NULL, *bad_offset: the blob offset of the first
 * field found wrong (for a truncated blob, the size passed in).
 *
 * Uses about sizeof(et_model_t) + 1 KB of stack; no allocation.
 */
et_status_t et_etm_parse(const uint8_t *blob, uint32_t size, uint32_t flags, et_model_t *model,
                         et_etm_info_t *info, uint32_t *bad_offset);

/*
 * The name of layer `layer` (0..info->n_layers - 1) of a parsed blob.
 * ET_ERR_ARG for NULL pointers or a layer index out of range.
 */
et_status_t et_etm_layer_name(const et_etm_info_t *info, uint16_t layer, const char **name);

#endif /* EDGETRAIN_ET_ETM_H */
