/*
 * edgetrain — .etm blob parser and validator (et_etm.h, docs/model-format.md).
 *
 * Works in place: the only writes are to the caller's outputs, and only after
 * every check passed. Each check reads only bytes an earlier check proved to
 * lie inside the blob.
 */
#include "edgetrain/et_etm.h"

#include <stddef.h>
#include <string.h>

#include "edgetrain/et_crc.h"
#include "edgetrain/et_fixed.h"

/* Header field offsets. */
#define H_MAGIC 0u
#define H_VERSION 4u
#define H_HEADER_SIZE 6u
#define H_BLOB_SIZE 8u
#define H_ALIGN 12u
#define H_IMAGE_OFFSET 16u
#define H_IMAGE_SIZE 20u
#define H_N_LAYERS 24u
#define H_N_TENSORS 26u
#define H_NAME_LEN 28u
#define H_PROV_LEN 30u
#define H_RESERVED 32u
#define H_RESERVED_END 56u
#define H_META_CRC 56u
#define H_HEADER_CRC 60u

/* Layer record field offsets. */
#define L_KIND 0u
#define L_ACTIVATION 1u
#define L_PADDING 2u
#define L_KERNEL 3u
#define L_ALPHA_SHIFT 4u
#define L_NAME_LEN 5u
#define L_TENSORS 6u /* three uint16: weights, bias, bn */
#define L_IN 12u
#define L_OUT 20u
#define L_RESERVED 28u

/* Tensor descriptor field offsets. */
#define T_LAYER 0u
#define T_ROLE 1u
#define T_FMT 2u
#define T_NDIM 3u
#define T_DIMS 4u
#define T_OFFSET 12u
#define T_BYTES 16u

static uint32_t et_rd16(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static uint32_t et_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint32_t et_crc_of(const uint8_t *data, uint32_t len)
{
    uint32_t crc = 0;
    (void)et_crc32(&crc, data, len);
    return crc;
}

static int et_all_zero(const uint8_t *p, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }
    return 1;
}

/*
 * Check one string of `len` printable ASCII bytes followed by a NUL at
 * blob[*at], not reaching `end`; advance *at past the NUL. On failure *at is
 * the offset of the first bad byte.
 */
static int et_check_string(const uint8_t *blob, uint32_t *at, uint32_t len, uint32_t end)
{
    uint32_t i;
    for (i = 0; i < len; i++) {
        if (*at >= end || blob[*at] < 0x20 || blob[*at] > 0x7E) {
            return 0;
        }
        *at += 1;
    }
    if (*at >= end || blob[*at] != 0) {
        return 0;
    }
    *at += 1;
    return 1;
}

static void et_read_shape(const uint8_t *p, et_shape_t *s)
{
    s->h = (uint16_t)et_rd16(p);
    s->w = (uint16_t)et_rd16(p + 2);
    s->c = (uint16_t)et_rd16(p + 4);
    s->fmt = p[6];
}

/* The format a tensor of each role is stored in (index: role). */
static const uint8_t et_role_fmt[4] = {0, ET_FMT_WEIGHT, ET_FMT_BIAS, ET_FMT_BIAS};

/*
 * The descriptor checks that need no layer semantics: owner and role, format,
 * dimensions against the byte count, alignment and extent in the image.
 */
static et_status_t et_check_descriptor(const uint8_t *d, uint32_t layer, uint32_t role, uint32_t align,
                                       uint32_t image_size, uint32_t *bad_field)
{
    uint32_t ndim = d[T_NDIM];
    uint32_t elem;
    uint32_t bytes = et_rd32(d + T_BYTES);
    uint32_t offset = et_rd32(d + T_OFFSET);
    uint64_t count = 1;
    uint32_t k;
    if (d[T_LAYER] != layer) {
        *bad_field = T_LAYER;
        return ET_ERR_CORRUPT;
    }
    if (d[T_ROLE] != role) {
        *bad_field = T_ROLE;
        return ET_ERR_CORRUPT;
    }
    if (d[T_FMT] != et_role_fmt[role]) {
        /* Another numeric format for this role is a valid request this build does not implement. */
        *bad_field = T_FMT;
        return ET_ERR_UNSUPPORTED;
    }
    elem = d[T_FMT] == ET_FMT_WEIGHT ? 1u : 2u;
    if (ndim < 1 || ndim > 4) {
        *bad_field = T_NDIM;
        return ET_ERR_CORRUPT;
    }
    for (k = 0; k < 4; k++) {
        uint32_t dim = et_rd16(d + T_DIMS + 2 * k);
        if ((k < ndim) ? (dim == 0) : (dim != 0)) {
            *bad_field = T_DIMS + 2 * k;
            return ET_ERR_CORRUPT;
        }
        if (k < ndim) {
            count *= dim; /* at most (2^16 - 1)^4 < 2^64 */
        }
    }
    if (bytes % elem != 0 || count != (uint64_t)(bytes / elem)) {
        *bad_field = T_BYTES;
        return ET_ERR_CORRUPT;
    }
    if (offset % align != 0 || offset > image_size || bytes > image_size - offset) {
        *bad_field = T_OFFSET;
        return ET_ERR_CORRUPT;
    }
    return ET_OK;
}

/* The dimensions a layer needs for a tensor of `role`; returns ndim (0 if none). */
static uint32_t et_expected_dims(const et_layer_t *l, uint32_t role, uint32_t dims[4])
{
    dims[0] = dims[1] = dims[2] = dims[3] = 0;
    if (role == ET_ETM_ROLE_WEIGHTS && l->kind == ET_LAYER_CONV2D) {
        dims[0] = l->out.c;
        dims[1] = l->kernel;
        dims[2] = l->kernel;
        dims[3] = l->in.c;
        return 4;
    }
    if (role == ET_ETM_ROLE_WEIGHTS && l->kind == ET_LAYER_DENSE) {
        dims[0] = l->out.c;
        dims[1] = l->in.c;
        return 2;
    }
    if (role == ET_ETM_ROLE_BIAS) {
        dims[0] = l->out.c;
        return 1;
    }
    if (role == ET_ETM_ROLE_BN) {
        dims[0] = 4;
        dims[1] = l->in.c;
        return 2;
    }
    return 0;
}

#define ET_FAIL(status, where)                                                                                \
    do {                                                                                                      \
        st = (status);                                                                                        \
        at = (where);                                                                                         \
        goto fail;                                                                                            \
    } while (0)

et_status_t et_etm_parse(const uint8_t *blob, uint32_t size, uint32_t flags, et_model_t *model,
                         et_etm_info_t *info, uint32_t *bad_offset)
{
    et_model_t table;
    et_status_t st = ET_OK;
    uint32_t at = 0;
    uint32_t blob_size, align, image_offset, image_size, n_layers, n_tensors, name_len, prov_len;
    uint32_t tables_end, strings_end, pos, names_at, i, next_tensor;
    uint16_t bad_layer = 0;

    if (blob == NULL || model == NULL || (flags & ~(uint32_t)ET_ETM_SKIP_BLOB_CRC) != 0) {
        return ET_ERR_ARG;
    }
    /* Identity: magic, then version (its layout may differ: nothing else is read before it). */
    if (size < 4) {
        ET_FAIL(ET_ERR_CORRUPT, size);
    }
    if (et_rd32(blob + H_MAGIC) != (uint32_t)ET_ETM_MAGIC) {
        ET_FAIL(ET_ERR_CORRUPT, H_MAGIC);
    }
    if (size < H_VERSION + 2) {
        ET_FAIL(ET_ERR_CORRUPT, size);
    }
    if (et_rd16(blob + H_VERSION) != ET_ETM_VERSION) {
        ET_FAIL(ET_ERR_VERSION, H_VERSION);
    }
    if (size < ET_ETM_HEADER_BYTES) {
        ET_FAIL(ET_ERR_CORRUPT, size);
    }
    if (et_crc_of(blob, H_HEADER_CRC) != et_rd32(blob + H_HEADER_CRC)) {
        ET_FAIL(ET_ERR_CORRUPT, H_HEADER_CRC);
    }

    /* Header fields, each against its range, then the geometry they imply. */
    blob_size = et_rd32(blob + H_BLOB_SIZE);
    align = et_rd32(blob + H_ALIGN);
    image_offset = et_rd32(blob + H_IMAGE_OFFSET);
    image_size = et_rd32(blob + H_IMAGE_SIZE);
    n_layers = et_rd16(blob + H_N_LAYERS);
    n_tensors = et_rd16(blob + H_N_TENSORS);
    name_len = et_rd16(blob + H_NAME_LEN);
    prov_len = et_rd16(blob + H_PROV_LEN);
    if (et_rd16(blob + H_HEADER_SIZE) != ET_ETM_HEADER_BYTES) {
        ET_FAIL(ET_ERR_CORRUPT, H_HEADER_SIZE);
    }
    if (!et_all_zero(blob + H_RESERVED, H_RESERVED_END - H_RESERVED)) {
        ET_FAIL(ET_ERR_CORRUPT, H_RESERVED);
    }
    if (align < ET_ETM_MIN_ALIGN || align > ET_ETM_MAX_ALIGN || (align & (align - 1)) != 0) {
        ET_FAIL(ET_ERR_CORRUPT, H_ALIGN);
    }
    if (n_layers < 1 || n_layers > ET_MAX_LAYERS) {
        ET_FAIL(ET_ERR_CORRUPT, H_N_LAYERS);
    }
    if (n_tensors > ET_ETM_MAX_TENSORS) {
        ET_FAIL(ET_ERR_CORRUPT, H_N_TENSORS);
    }
    if (name_len > ET_ETM_MAX_NAME) {
        ET_FAIL(ET_ERR_CORRUPT, H_NAME_LEN);
    }
    if (prov_len > ET_ETM_MAX_PROVENANCE) {
        ET_FAIL(ET_ERR_CORRUPT, H_PROV_LEN);
    }
    tables_end = ET_ETM_HEADER_BYTES + ET_ETM_LAYER_BYTES * n_layers + ET_ETM_TENSOR_BYTES * n_tensors;
    /* The shortest possible string area: every string empty but its NUL. */
    if (image_offset % align != 0 || image_offset < tables_end + name_len + prov_len + 2 + n_layers) {
        ET_FAIL(ET_ERR_CORRUPT, H_IMAGE_OFFSET);
    }
    if (image_size % align != 0 || image_size > UINT32_MAX - ET_ETM_TRAILER_BYTES - image_offset) {
        ET_FAIL(ET_ERR_CORRUPT, H_IMAGE_SIZE);
    }
    if (blob_size != image_offset + image_size + ET_ETM_TRAILER_BYTES) {
        ET_FAIL(ET_ERR_CORRUPT, H_BLOB_SIZE);
    }
    if (size < blob_size) {
        ET_FAIL(ET_ERR_CORRUPT, size); /* truncated */
    }

    /* Integrity: the metadata, then (unless skipped) everything. */
    if (et_crc_of(blob + ET_ETM_HEADER_BYTES, image_offset - ET_ETM_HEADER_BYTES) != et_rd32(blob + H_META_CRC)) {
        ET_FAIL(ET_ERR_CORRUPT, H_META_CRC);
    }
    if ((flags & ET_ETM_SKIP_BLOB_CRC) == 0 &&
        et_crc_of(blob, blob_size - ET_ETM_TRAILER_BYTES) != et_rd32(blob + blob_size - ET_ETM_TRAILER_BYTES)) {
        ET_FAIL(ET_ERR_CORRUPT, blob_size - ET_ETM_TRAILER_BYTES);
    }

    /* Strings: model name, provenance, one name per layer; then zero padding, no slack. */
    pos = tables_end;
    if (!et_check_string(blob, &pos, name_len, image_offset)) {
        ET_FAIL(ET_ERR_CORRUPT, pos);
    }
    if (!et_check_string(blob, &pos, prov_len, image_offset)) {
        ET_FAIL(ET_ERR_CORRUPT, pos);
    }
    names_at = pos;
    for (i = 0; i < n_layers; i++) {
        uint32_t rec = ET_ETM_HEADER_BYTES + ET_ETM_LAYER_BYTES * i;
        if (blob[rec + L_NAME_LEN] > ET_ETM_MAX_NAME) {
            ET_FAIL(ET_ERR_CORRUPT, rec + L_NAME_LEN);
        }
        if (!et_check_string(blob, &pos, blob[rec + L_NAME_LEN], image_offset)) {
            ET_FAIL(ET_ERR_CORRUPT, pos);
        }
    }
    strings_end = pos;
    if (image_offset - strings_end >= align) {
        ET_FAIL(ET_ERR_CORRUPT, H_IMAGE_OFFSET);
    }
    if (!et_all_zero(blob + strings_end, image_offset - strings_end)) {
        ET_FAIL(ET_ERR_CORRUPT, strings_end);
    }

    /* Layer records and their tensor descriptors, in canonical order. */
    memset(&table, 0, sizeof table);
    table.image = blob + image_offset;
    table.image_size = image_size;
    table.n_layers = (uint16_t)n_layers;
    next_tensor = 0;
    for (i = 0; i < n_layers; i++) {
        uint32_t rec = ET_ETM_HEADER_BYTES + ET_ETM_LAYER_BYTES * i;
        const uint8_t *r = blob + rec;
        et_layer_t *l = &table.layers[i];
        uint32_t *slots[3];
        uint32_t role;
        if (r[L_IN + 7] != 0 || r[L_OUT + 7] != 0) {
            ET_FAIL(ET_ERR_CORRUPT, rec + (r[L_IN + 7] != 0 ? L_IN + 7 : L_OUT + 7));
        }
        if (!et_all_zero(r + L_RESERVED, 4)) {
            ET_FAIL(ET_ERR_CORRUPT, rec + L_RESERVED);
        }
        l->kind = r[L_KIND];
        l->activation = r[L_ACTIVATION];
        l->padding = r[L_PADDING];
        l->kernel = r[L_KERNEL];
        l->alpha_shift = (int8_t)(r[L_ALPHA_SHIFT] >= 128 ? (int)r[L_ALPHA_SHIFT] - 256 : (int)r[L_ALPHA_SHIFT]);
        et_read_shape(r + L_IN, &l->in);
        et_read_shape(r + L_OUT, &l->out);
        slots[0] = &l->weight_offset;
        slots[1] = &l->bias_offset;
        slots[2] = &l->bn_offset;
        for (role = ET_ETM_ROLE_WEIGHTS; role <= ET_ETM_ROLE_BN; role++) {
            uint32_t field = rec + L_TENSORS + 2 * (role - 1);
            uint32_t index = et_rd16(blob + field);
            uint32_t desc;
            uint32_t bad_field = 0;
            if (index == ET_ETM_NO_TENSOR) {
                *slots[role - 1] = ET_NO_TENSOR;
                continue;
            }
            if (index != next_tensor || index >= n_tensors) {
                ET_FAIL(ET_ERR_CORRUPT, field);
            }
            next_tensor++;
            desc = ET_ETM_HEADER_BYTES + ET_ETM_LAYER_BYTES * n_layers + ET_ETM_TENSOR_BYTES * index;
            st = et_check_descriptor(blob + desc, i, role, align, image_size, &bad_field);
            if (st != ET_OK) {
                ET_FAIL(st, desc + bad_field);
            }
            *slots[role - 1] = et_rd32(blob + desc + T_OFFSET);
        }
    }
    if (next_tensor != n_tensors) {
        ET_FAIL(ET_ERR_CORRUPT, H_N_TENSORS);
    }

    /* The table as a whole: kinds, shapes that chain, tensor presence, ranges, overlaps. */
    st = et_model_check(&table, &bad_layer);
    if (st != ET_OK) {
        ET_FAIL(st, ET_ETM_HEADER_BYTES + ET_ETM_LAYER_BYTES * (bad_layer < n_layers ? (uint32_t)bad_layer : n_layers));
    }

    /* Each descriptor's shape is the one its layer needs. */
    for (i = 0; i < n_layers; i++) {
        const uint8_t *r = blob + ET_ETM_HEADER_BYTES + ET_ETM_LAYER_BYTES * i;
        uint32_t role;
        for (role = ET_ETM_ROLE_WEIGHTS; role <= ET_ETM_ROLE_BN; role++) {
            uint32_t index = et_rd16(r + L_TENSORS + 2 * (role - 1));
            uint32_t dims[4];
            uint32_t ndim;
            uint32_t desc;
            uint32_t k;
            if (index == ET_ETM_NO_TENSOR) {
                continue;
            }
            desc = ET_ETM_HEADER_BYTES + ET_ETM_LAYER_BYTES * n_layers + ET_ETM_TENSOR_BYTES * index;
            ndim = et_expected_dims(&table.layers[i], role, dims);
            if (blob[desc + T_NDIM] != ndim) {
                ET_FAIL(ET_ERR_CORRUPT, desc + T_NDIM);
            }
            for (k = 0; k < ndim; k++) {
                if (et_rd16(blob + desc + T_DIMS + 2 * k) != dims[k]) {
                    ET_FAIL(ET_ERR_CORRUPT, desc + T_DIMS + 2 * k);
                }
            }
        }
    }

    memcpy(model, &table, sizeof table);
    if (info != NULL) {
        info->version = ET_ETM_VERSION;
        info->n_layers = (uint16_t)n_layers;
        info->n_tensors = (uint16_t)n_tensors;
        info->blob_size = blob_size;
        info->align = align;
        info->image_offset = image_offset;
        info->image_size = image_size;
        info->blob_crc = et_rd32(blob + blob_size - ET_ETM_TRAILER_BYTES);
        info->name = (const char *)(blob + tables_end);
        info->provenance = (const char *)(blob + tables_end + name_len + 1);
        info->layer_names = (const char *)(blob + names_at);
    }
    return ET_OK;
fail:
    if (bad_offset != NULL) {
        *bad_offset = at;
    }
    return st;
}

et_status_t et_etm_layer_name(const et_etm_info_t *info, uint16_t layer, const char **name)
{
    const char *p;
    uint16_t i;
    if (info == NULL || name == NULL || info->layer_names == NULL || layer >= info->n_layers) {
        return ET_ERR_ARG;
    }
    p = info->layer_names;
    for (i = 0; i < layer; i++) {
        while (*p != '\0') {
            p++;
        }
        p++;
    }
    *name = p;
    return ET_OK;
}
