/*
 * edgetrain — atomic weight commit (et_commit.h): A/B banks per tensor plus a
 * ring of CRC-protected commit records.
 */
#include <string.h>

#include "edgetrain/et_commit.h"
#include "edgetrain/et_crc.h"

#include "crc_internal.h"

#define ET_COMMIT_VERSION 0x32435445u /* "ETC2": parameter tensors beside the weights */
#define ET_NO_SLOT 0xFF

/* Slots are stored in uint8_t lookup tables (0xFF = none). */
typedef char et_commit_capacity_check[(ET_COMMIT_MAX_TENSORS >= 1 && ET_COMMIT_MAX_TENSORS < ET_NO_SLOT) ? 1 : -1];

/* ---- CRC-32 (et_crc.h): continue a CRC, starting from 0 ------------------- */

static uint32_t et_crc32_update(uint32_t crc, const uint8_t *data, uint32_t len)
{
    (void)et_crc32(&crc, data, len); /* data is never NULL here */
    return crc;
}

static uint32_t et_crc32_u32(uint32_t crc, uint32_t v)
{
    uint8_t b[4];
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
    return et_crc32_update(crc, b, 4);
}

static uint32_t et_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void et_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t et_round_up(uint32_t v, uint32_t unit)
{
    return (v + unit - 1) / unit * unit;
}

/* ---- geometry and layout ------------------------------------------------- */

static int et_geometry_ok(const et_nvm_t *nvm)
{
    uint32_t pu = nvm->program_unit;
    if (nvm->base == NULL || nvm->program == NULL || pu == 0 || pu > 4096 || (pu & (pu - 1)) != 0) {
        return 0;
    }
    if (nvm->erase_unit != 0 && (nvm->erase == NULL || nvm->erase_unit % pu != 0)) {
        return 0;
    }
    return 1;
}

static uint32_t et_align_unit(const et_nvm_t *nvm)
{
    return nvm->erase_unit != 0 ? nvm->erase_unit : nvm->program_unit;
}

/* The factory-image offset of a tensor: the layer's weights, or its parameter block. */
static uint32_t et_factory_offset(const et_layer_t *l, int params)
{
    if (!params) {
        return l->weight_offset;
    }
    return l->bias_offset != ET_NO_TENSOR ? l->bias_offset : l->bn_offset;
}

/*
 * Lay the tensors out from area_offset and return the bytes used in *bytes
 * (as uint64 so that nothing wraps). With c == NULL only the size is
 * computed; otherwise c->tensors and the lookup tables are filled.
 * Order: per layer, its weights, then its parameter block (bias, or BN).
 */
static et_status_t et_layout(et_commit_t *c, const et_model_t *model, const et_nvm_t *nvm, uint16_t ring_slots,
                             uint32_t area_offset, uint64_t *bytes)
{
    uint32_t align = et_align_unit(nvm);
    uint32_t rec = et_round_up(ET_COMMIT_RECORD_BYTES, nvm->program_unit);
    uint64_t ring_bytes = (uint64_t)et_round_up((uint32_t)ring_slots * rec, align);
    uint64_t at = area_offset;
    uint16_t n = 0;
    uint16_t i;
    int kind;
    if (nvm->erase_unit != 0 && ring_bytes < 2u * (uint64_t)nvm->erase_unit) {
        ring_bytes = 2u * (uint64_t)nvm->erase_unit;
    }
    if (c != NULL) {
        c->record_bytes = rec;
        c->align = align;
        memset(c->slot_of_weights, ET_NO_SLOT, sizeof(c->slot_of_weights));
        memset(c->slot_of_params, ET_NO_SLOT, sizeof(c->slot_of_params));
    }
    for (i = 0; i < model->n_layers; i++) {
        const et_layer_t *l = &model->layers[i];
        uint32_t wb;
        uint32_t bb;
        uint32_t nb;
        (void)et_layer_tensor_bytes(l, &wb, &bb, &nb);
        for (kind = 0; kind < 2; kind++) {
            uint32_t size = kind == 0 ? wb : bb + nb;
            uint32_t bank_bytes;
            if (size == 0) {
                continue;
            }
            if (n >= ET_COMMIT_MAX_TENSORS) {
                return ET_ERR_UNSUPPORTED;
            }
            bank_bytes = et_round_up(size, align);
            if (c != NULL) {
                et_commit_tensor_t *t = &c->tensors[n];
                memset(t, 0, sizeof(*t));
                t->id = (uint16_t)(kind == 0 ? i : (ET_COMMIT_PARAMS | i));
                t->rows = kind == 0 ? l->out.c : size / 2u;
                t->row_bytes = size / t->rows;
                t->bytes = size;
                t->bank_bytes = bank_bytes;
                t->bank_offset[0] = (uint32_t)at;
                t->bank_offset[1] = (uint32_t)(at + bank_bytes);
                t->ring_offset = (uint32_t)(at + 2u * (uint64_t)bank_bytes);
                t->ring_slots = (uint32_t)(ring_bytes / rec);
                t->head = -1;
                t->active_slot = -1;
                t->active = ET_COMMIT_FACTORY;
                t->next_seq = 1;
                if (kind == 0) {
                    c->slot_of_weights[i] = (uint8_t)n;
                } else {
                    c->slot_of_params[i] = (uint8_t)n;
                }
            }
            n++;
            at += 2u * (uint64_t)bank_bytes + ring_bytes;
            if (at > 0xFFFFFFFFu) {
                return ET_ERR_NOMEM;
            }
        }
    }
    if (c != NULL) {
        c->n_tensors = n;
    }
    *bytes = at - area_offset;
    return ET_OK;
}

static et_status_t et_check_common(const et_model_t *model, const et_nvm_t *nvm, uint16_t ring_slots)
{
    et_status_t st;
    if (model == NULL || nvm == NULL) {
        return ET_ERR_ARG;
    }
    if (ring_slots < ET_COMMIT_MIN_RING || ring_slots > ET_COMMIT_MAX_RING || !et_geometry_ok(nvm)) {
        return ET_ERR_ARG;
    }
    st = et_model_check(model, NULL);
    return st;
}

et_status_t et_commit_area_size(const et_model_t *model, const et_nvm_t *nvm, uint16_t ring_slots, uint32_t *bytes)
{
    uint64_t need;
    et_status_t st;
    if (bytes == NULL) {
        return ET_ERR_ARG;
    }
    st = et_check_common(model, nvm, ring_slots);
    if (st != ET_OK) {
        return st;
    }
    st = et_layout(NULL, model, nvm, ring_slots, 0, &need);
    if (st != ET_OK) {
        return st;
    }
    *bytes = (uint32_t)need;
    return ET_OK;
}

/* Staging buffer: one alignment unit, and at least one record slot. */
static uint32_t et_buffer_need(const et_nvm_t *nvm)
{
    uint32_t align = et_align_unit(nvm);
    uint32_t rec = et_round_up(ET_COMMIT_RECORD_BYTES, nvm->program_unit);
    return align >= rec ? align : et_round_up(rec, align);
}

et_status_t et_commit_get_buffer_size(const et_nvm_t *nvm, uint32_t *bytes)
{
    if (nvm == NULL || bytes == NULL || !et_geometry_ok(nvm)) {
        return ET_ERR_ARG;
    }
    *bytes = et_buffer_need(nvm);
    return ET_OK;
}

/* ---- records ------------------------------------------------------------- */

static uint32_t et_layout_tag(const et_commit_t *c)
{
    uint32_t crc = 0;
    uint16_t i;
    crc = et_crc32_u32(crc, ET_COMMIT_VERSION);
    crc = et_crc32_u32(crc, c->cfg.model_id);
    crc = et_crc32_u32(crc, c->record_bytes);
    crc = et_crc32_u32(crc, c->align);
    crc = et_crc32_u32(crc, c->n_tensors);
    for (i = 0; i < c->n_tensors; i++) {
        const et_commit_tensor_t *t = &c->tensors[i];
        crc = et_crc32_u32(crc, t->id);
        crc = et_crc32_u32(crc, t->bytes);
        crc = et_crc32_u32(crc, t->bank_offset[0]);
        crc = et_crc32_u32(crc, t->bank_offset[1]);
        crc = et_crc32_u32(crc, t->ring_offset);
        crc = et_crc32_u32(crc, t->ring_slots);
    }
    return crc;
}

static uint32_t et_record_crc(uint32_t tag, const uint8_t *rec)
{
    return et_crc32_update(et_crc32_u32(0, tag), rec, 12);
}

/* 1 if the ring slot holds a valid record of tensor t; its fields go to *seq, *bank, *bank_crc. */
static int et_record_read(const et_commit_t *c, const et_commit_tensor_t *t, uint32_t slot, uint32_t *seq,
                          uint8_t *bank, uint32_t *bank_crc)
{
    const uint8_t *rec = c->nvm->base + t->ring_offset + slot * c->record_bytes;
    uint32_t s = et_get_u32(rec);
    uint32_t id = (uint32_t)rec[4] | ((uint32_t)rec[5] << 8);
    if (rec[7] != ET_COMMIT_MAGIC || rec[6] > ET_COMMIT_BANK_B || id != t->id || s == 0 ||
        et_get_u32(rec + 12) != et_record_crc(c->tag, rec)) {
        return 0;
    }
    *seq = s;
    *bank = rec[6];
    *bank_crc = et_get_u32(rec + 8);
    return 1;
}

static void et_recover_tensor(et_commit_t *c, et_commit_tensor_t *t)
{
    uint32_t below = 0xFFFFFFFFu; /* only records with seq < below are still candidates */
    uint32_t newest = 0;
    uint32_t tries;
    uint32_t s;
    t->head = -1;
    t->active_slot = -1;
    t->active = ET_COMMIT_FACTORY;
    t->seq = 0;
    t->crc = 0;
    t->known = 0; /* what the inactive bank holds is not known after a restart */
    t->dirty[0] = 0;
    t->dirty[1] = 0;
    for (s = 0; s < t->ring_slots; s++) {
        uint32_t seq;
        uint8_t bank;
        uint32_t crc;
        if (et_record_read(c, t, s, &seq, &bank, &crc) && seq >= newest) {
            newest = seq;
            t->head = (int32_t)s;
        }
    }
    t->next_seq = newest + 1;
    /* Newest valid record whose bank matches its CRC; at most ring_slots candidates. */
    for (tries = 0; tries < t->ring_slots; tries++) {
        uint32_t best = 0;
        int32_t best_slot = -1;
        uint8_t best_bank = 0;
        uint32_t best_crc = 0;
        for (s = 0; s < t->ring_slots; s++) {
            uint32_t seq;
            uint8_t bank;
            uint32_t crc;
            if (et_record_read(c, t, s, &seq, &bank, &crc) && seq < below && seq > best) {
                best = seq;
                best_slot = (int32_t)s;
                best_bank = bank;
                best_crc = crc;
            }
        }
        if (best_slot < 0) {
            return; /* no (further) valid record: the factory image is active */
        }
        if (et_crc32_update(0, c->nvm->base + t->bank_offset[best_bank], t->bytes) == best_crc) {
            t->active = best_bank;
            t->active_slot = best_slot;
            t->seq = best;
            t->crc = best_crc;
            return;
        }
        c->stats.crc_fallbacks += 1;
        below = best;
    }
}

et_status_t et_commit_open(et_commit_t *c, const et_model_t *model, et_nvm_t *nvm, const et_commit_config_t *cfg,
                           uint8_t *buffer, uint32_t buffer_size)
{
    uint64_t need;
    uint32_t align;
    uint16_t i;
    et_status_t st;
    uintptr_t img_lo;
    uintptr_t img_hi;
    uintptr_t area_lo;
    uintptr_t area_hi;
    if (c == NULL || cfg == NULL || buffer == NULL) {
        return ET_ERR_ARG;
    }
    st = et_check_common(model, nvm, cfg->ring_slots);
    if (st != ET_OK) {
        return st;
    }
    align = et_align_unit(nvm);
    if (cfg->area_offset % align != 0 || cfg->area_offset > nvm->size || cfg->area_size > nvm->size - cfg->area_offset) {
        return ET_ERR_ARG;
    }
    if (buffer_size < et_buffer_need(nvm) || buffer_size % align != 0) {
        return buffer_size < et_buffer_need(nvm) ? ET_ERR_NOMEM : ET_ERR_ARG;
    }
    img_lo = (uintptr_t)model->image;
    img_hi = img_lo + model->image_size;
    area_lo = (uintptr_t)nvm->base + cfg->area_offset;
    area_hi = area_lo + cfg->area_size;
    if (img_lo < area_hi && area_lo < img_hi) {
        return ET_ERR_ARG;
    }
    /* Size first (nothing written), then lay out into *c: no copy of the handle on the stack. */
    st = et_layout(NULL, model, nvm, cfg->ring_slots, cfg->area_offset, &need);
    if (st != ET_OK) {
        return st;
    }
    if (need > cfg->area_size) {
        return ET_ERR_NOMEM;
    }
    memset(c, 0, sizeof(*c));
    c->model = model;
    c->nvm = nvm;
    c->cfg = *cfg;
    (void)et_layout(c, model, nvm, cfg->ring_slots, cfg->area_offset, &need);
    c->area_bytes = (uint32_t)need;
    c->tag = et_layout_tag(c);
    c->stage = buffer;
    c->stage_size = buffer_size;
    for (i = 0; i < c->n_tensors; i++) {
        et_recover_tensor(c, &c->tensors[i]);
    }
    return ET_OK;
}

/* The slot of tensor `id` in c->tensors, or ET_NO_SLOT. */
static uint8_t et_slot_of(const et_commit_t *c, uint16_t id)
{
    uint16_t layer = (uint16_t)(id & ~ET_COMMIT_PARAMS);
    if (c == NULL || c->model == NULL || layer >= ET_MAX_LAYERS) {
        return ET_NO_SLOT;
    }
    return (id & ET_COMMIT_PARAMS) != 0 ? c->slot_of_params[layer] : c->slot_of_weights[layer];
}

static et_commit_tensor_t *et_tensor_of(const et_commit_t *c, uint16_t id)
{
    uint8_t slot = et_slot_of(c, id);
    return slot == ET_NO_SLOT ? NULL : (et_commit_tensor_t *)&c->tensors[slot];
}

static const uint8_t *et_active_bytes(const et_commit_t *c, const et_commit_tensor_t *t)
{
    if (t->active == ET_COMMIT_FACTORY) {
        return c->model->image +
               et_factory_offset(&c->model->layers[t->id & ~ET_COMMIT_PARAMS], (t->id & ET_COMMIT_PARAMS) != 0);
    }
    return c->nvm->base + t->bank_offset[t->active];
}

et_status_t et_commit_active_tensor(const et_commit_t *c, uint16_t tensor, const int8_t **weights)
{
    const et_commit_tensor_t *t = et_tensor_of(c, tensor);
    if (t == NULL || weights == NULL) {
        return ET_ERR_ARG;
    }
    *weights = (const int8_t *)et_active_bytes(c, t);
    return ET_OK;
}

et_status_t et_commit_tensor_info(const et_commit_t *c, uint16_t tensor, et_commit_tensor_t *info)
{
    const et_commit_tensor_t *t = et_tensor_of(c, tensor);
    if (t == NULL || info == NULL) {
        return ET_ERR_ARG;
    }
    *info = *t;
    return ET_OK;
}

et_status_t et_commit_refresh(et_commit_t *c, uint16_t tensor)
{
    et_commit_tensor_t *t = et_tensor_of(c, tensor);
    if (t == NULL) {
        return ET_ERR_ARG;
    }
    if (c->busy && c->busy_slot == et_slot_of(c, tensor)) {
        return ET_ERR_STATE;
    }
    if (t->active != ET_COMMIT_FACTORY) {
        t->crc = et_crc32_update(0, c->nvm->base + t->bank_offset[t->active], t->bytes);
    }
    t->known = 0;
    return ET_OK;
}

et_status_t et_commit_get_stats(const et_commit_t *c, et_commit_stats_t *stats)
{
    if (c == NULL || stats == NULL) {
        return ET_ERR_ARG;
    }
    *stats = c->stats;
    return ET_OK;
}

/* ---- writing -------------------------------------------------------------- */

/* A HAL answer: ET_ERR_WORN is counted and tolerated, anything else but ET_OK stops. */
static et_status_t et_hal_result(et_commit_t *c, et_status_t st)
{
    if (st == ET_ERR_WORN) {
        c->stats.worn_reports += 1;
        return ET_OK;
    }
    return st;
}

/* The same for a program or erase of the target bank: a worn report there also means the cells may
 * not hold what was streamed, so the commit takes its CRC from the cells (et_commit_end). */
static et_status_t et_bank_result(et_commit_t *c, et_status_t st)
{
    if (st == ET_ERR_WORN) {
        c->bank_worn = 1;
    }
    return et_hal_result(c, st);
}

static et_status_t et_program(et_commit_t *c, uint32_t offset, const uint8_t *data, uint32_t len)
{
    c->stats.program_ops += 1;
    c->stats.bytes_programmed += len;
    return c->nvm->program(c->nvm, offset, data, len);
}

/* Program [from, to) of a run of differing units. */
static et_status_t et_program_run(et_commit_t *c, uint32_t offset, const uint8_t *src, uint32_t from, uint32_t to)
{
    return et_bank_result(c, et_program(c, offset + from, src + from, to - from));
}

/* The index of the lowest byte of x (x != 0) that is not zero. */
static uint32_t et_low_byte(uint64_t x)
{
#if defined(__GNUC__)
    return (uint32_t)__builtin_ctzll(x) >> 3;
#else
    uint32_t k = 0;
    if ((uint32_t)x == 0) {
        k = 4;
        x >>= 32;
    }
    if ((x & 0xFFFFu) == 0) {
        k += 2;
        x >>= 16;
    }
    return (x & 0xFFu) == 0 ? k + 1 : k;
#endif
}

/* From word offset u up to `end` (a multiple of 8 from u), while src equals the target cells cur:
 * with `crc`, extend the CRC register *reg by src XOR act. Returns the offset of the first word that
 * differs from cur, or end. */
static inline uint32_t et_scan_same(const uint8_t *src, const uint8_t *act, const uint8_t *cur, uint32_t u,
                                    uint32_t end, uint32_t *reg, int crc)
{
    uint32_t r = *reg;
    for (; u < end; u += 8) {
        uint64_t w = et_crc32_load64(src + u);
        if (w != et_crc32_load64(cur + u)) {
            break;
        }
        if (crc) {
            r = et_crc32_reg8_word(r, w ^ et_crc32_load64(act + u));
        }
    }
    *reg = r;
    return u;
}

/*
 * Program the program units of [offset, offset + len) (len a multiple of the program unit) whose
 * content differs from src, run by run: a run is a maximal stretch of differing units, one program
 * call each, in address order. Words of eight bytes where src equals the cells are skipped in a
 * tight loop; a word that differs is split into its units by bit masks.
 * With `crc`, the same pass extends the CRC register *reg by the len bytes src XOR act (act: the
 * active tensor at the same place), so the new rows are read once for the compare and the CRC; where
 * src equals act (most words of an update) the CRC step is the register's own lookups.
 */
static inline et_status_t et_diff_runs(et_commit_t *c, uint32_t offset, const uint8_t *src, const uint8_t *act,
                                       uint32_t len, uint32_t *reg, int crc)
{
    const uint8_t *cur = c->nvm->base + offset;
    uint32_t pu = c->nvm->program_unit;
    uint32_t r = crc ? *reg : 0;
    uint32_t u = 0;
    uint32_t run = 0; /* start of the open run of differing units */
    size_t open = 0; /* 0x80 (bit 7, a unit's flag) while a run is open; register-wide on any target */
    et_status_t st;
    if (pu >= 8) { /* whole words per unit */
        while (u < len) {
            uint32_t unit = u;
            uint64_t differs = 0;
            for (; u < unit + pu; u += 8) {
                uint64_t w = et_crc32_load64(src + u);
                differs |= w ^ et_crc32_load64(cur + u);
                if (crc) {
                    r = et_crc32_reg8_word(r, w ^ et_crc32_load64(act + u));
                }
            }
            if (differs != 0) {
                run = open ? run : unit;
                open = 0x80;
            } else if (open) {
                open = 0;
                if ((st = et_program_run(c, offset, src, run, unit)) != ET_OK) {
                    return st;
                }
            }
        }
    } else { /* 8 / pu units per word, a flag at bit 7 of each unit's first byte */
        const uint32_t shift = 8u * pu; /* from one unit's flag to the next one's */
        const uint64_t low7 = UINT64_C(0x7F7F7F7F7F7F7F7F);
        const uint64_t units = pu == 1 ? UINT64_C(0x8080808080808080) : pu == 2 ? UINT64_C(0x0080008000800080)
                                                                                : UINT64_C(0x0000008000000080);
        const uint32_t words = len - len % 8u;
        for (;;) {
            uint32_t v = et_scan_same(src, act, cur, u, words, &r, crc);
            uint64_t w;
            uint64_t f;
            uint64_t before;
            uint64_t starts;
            uint64_t ends;
            if (open && v > u) { /* the run ended where the equal words began */
                open = 0;
                if ((st = et_program_run(c, offset, src, run, u)) != ET_OK) {
                    return st;
                }
            }
            u = v;
            if (u >= words) {
                break;
            }
            w = et_crc32_load64(src + u);
            f = w ^ et_crc32_load64(cur + u);
            if (crc) {
                r = et_crc32_reg8_word(r, w ^ et_crc32_load64(act + u));
            }
            f = ((f & low7) + low7) | f; /* bit 8k+7: byte k differs (no carry between bytes) */
            if (pu >= 2) {                /* bit 8k+7: a byte of the unit at byte k differs */
                f &= ~low7;
                f |= f >> 8;
                f |= pu >= 4 ? f >> 16 : 0;
            }
            f &= units;
            before = (f << shift) | open; /* per unit: the unit before it differs (flag bits only) */
            starts = f & ~before;
            ends = ~f & before;
            for (;;) { /* runs start and end in turn */
                if (!open) {
                    if (starts == 0) {
                        break;
                    }
                    run = u + et_low_byte(starts);
                    starts &= starts - 1u;
                    open = 0x80;
                } else {
                    uint32_t k;
                    if (ends == 0) {
                        break; /* the run goes on into the next word */
                    }
                    k = et_low_byte(ends);
                    ends &= ends - 1u;
                    open = 0;
                    if ((st = et_program_run(c, offset, src, run, u + k)) != ET_OK) {
                        return st;
                    }
                }
            }
            u += 8;
        }
        for (; u < len; u += pu) { /* the last units, fewer than eight bytes */
            uint32_t differs = 0;
            uint32_t j;
            for (j = u; j < u + pu; j++) {
                differs |= (uint32_t)(src[j] ^ cur[j]);
                if (crc) {
                    r = et_crc32_reg1(r, (uint32_t)(src[j] ^ act[j]));
                }
            }
            if (differs != 0) {
                run = open ? run : u;
                open = 0x80;
            } else if (open) {
                open = 0;
                if ((st = et_program_run(c, offset, src, run, u)) != ET_OK) {
                    return st;
                }
            }
        }
    }
    if (crc) {
        *reg = r;
    }
    return open ? et_program_run(c, offset, src, run, len) : ET_OK;
}

/* Program the program units of [offset, offset + len) whose content differs from src, run by run. */
static et_status_t et_program_diff(et_commit_t *c, uint32_t offset, const uint8_t *src, uint32_t len)
{
    return et_diff_runs(c, offset, src, NULL, len, NULL, 0);
}

/* et_program_diff, with the CRC register *reg extended by src XOR act in the same pass (on a host
 * with carry-less multiplies, long rows in a pass of their own: the folding costs a fraction of the
 * table steps). */
static et_status_t et_program_diff_crc(et_commit_t *c, uint32_t offset, const uint8_t *src, const uint8_t *act,
                                       uint32_t len, uint32_t *reg)
{
#if ET_HOST_CLMUL
    if (len >= ET_CRC32_CLMUL_MIN && et_host_clmul()) {
        et_status_t st = et_diff_runs(c, offset, src, NULL, len, NULL, 0);
        if (st == ET_OK) {
            *reg = et_crc32_reg_clmul(*reg, src, act, len);
        }
        return st;
    }
#endif
    return et_diff_runs(c, offset, src, act, len, reg, 1);
}

/* Write len bytes from src (the stage, or whole stages' worth of the new tensor; len: a multiple of
 * the alignment unit, or of the program unit without erase) to the target bank at stage_pos. */
static et_status_t et_flush(et_commit_t *c, const uint8_t *src, uint32_t len)
{
    const et_commit_tensor_t *t = &c->tensors[c->busy_slot];
    uint32_t base = t->bank_offset[c->target] + c->stage_pos;
    uint32_t eu = c->nvm->erase_unit;
    uint32_t p;
    et_status_t st;
    if (eu == 0) {
        return et_program_diff(c, base, src, len);
    }
    for (p = 0; p < len; p += eu) {
        const uint8_t *cur = c->nvm->base + base + p;
        const uint8_t *want = src + p;
        uint32_t i;
        int reachable = 1;
        if (memcmp(cur, want, eu) == 0) {
            continue;
        }
        for (i = 0; i < eu; i++) {
            if ((uint8_t)(cur[i] & want[i]) != want[i]) {
                reachable = 0;
                break;
            }
        }
        if (!reachable) {
            c->stats.erase_ops += 1;
            st = et_bank_result(c, c->nvm->erase(c->nvm, base + p, eu));
            if (st != ET_OK) {
                return st;
            }
        }
        st = et_program_diff(c, base + p, want, eu);
        if (st != ET_OK) {
            return st;
        }
    }
    return ET_OK;
}

/* Append n bytes of the new tensor to the stage, flushing whole stages. While the stage is empty,
 * whole stages' worth of src go to the bank straight from src: the same bytes at the same places,
 * without a copy and in one pass (src is the caller's rows or the active bank, never the target). */
static et_status_t et_feed(et_commit_t *c, const uint8_t *src, uint32_t n)
{
    while (n > 0) {
        uint32_t take = c->stage_size - c->stage_fill;
        et_status_t st;
        if (c->stage_fill == 0 && n >= c->stage_size) {
            uint32_t direct = n - n % c->stage_size;
            st = et_flush(c, src, direct);
            if (st != ET_OK) {
                return st;
            }
            c->stage_pos += direct;
            c->next_byte += direct;
            src += direct;
            n -= direct;
            continue;
        }
        if (take > n) {
            take = n;
        }
        memcpy(c->stage + c->stage_fill, src, take);
        c->stage_fill += take;
        c->next_byte += take;
        src += take;
        n -= take;
        if (c->stage_fill == c->stage_size) {
            st = et_flush(c, c->stage, c->stage_size);
            if (st != ET_OK) {
                return st;
            }
            c->stage_pos += c->stage_size;
            c->stage_fill = 0;
        }
    }
    return ET_OK;
}

/* et_feed of the given rows on NVM without erase, with the CRC register *reg of their difference from
 * the active tensor (act, at the same place) extended in the same order: whole stages' worth go to the
 * bank through et_program_diff_crc (one pass for the CRC and the compare), the rest is staged as
 * et_feed stages it, so the program calls are those et_feed makes. */
static et_status_t et_feed_rows(et_commit_t *c, const et_commit_tensor_t *t, const uint8_t *src, const uint8_t *act,
                                uint32_t n, uint32_t *reg)
{
    while (n > 0) {
        uint32_t take = c->stage_size - c->stage_fill;
        et_status_t st;
        if (c->stage_fill == 0 && n >= c->stage_size) {
            take = n - n % c->stage_size;
            st = et_program_diff_crc(c, t->bank_offset[c->target] + c->stage_pos, src, act, take, reg);
            if (st != ET_OK) {
                return st;
            }
            c->stage_pos += take;
            c->next_byte += take;
        } else {
            uint32_t x;
            take = take < n ? take : n;
            x = ~*reg;
            (void)et_crc32_xor(&x, src, act, take);
            *reg = ~x;
            if ((st = et_feed(c, src, take)) != ET_OK) {
                return st;
            }
        }
        src += take;
        act += take;
        n -= take;
    }
    return ET_OK;
}

/* Rows per dirty-tracking chunk: a tensor's rows are tracked in at most 64 chunks. */
static uint32_t et_chunk_rows(const et_commit_tensor_t *t)
{
    return (t->rows + 63u) / 64u;
}

static uint32_t et_chunk_dirty(const et_commit_tensor_t *t, uint32_t k)
{
    return (t->dirty[k >> 5] >> (k & 31u)) & 1u;
}

/* Pass over n bytes of the active tensor (src) at next_byte in which the target bank already holds
 * the active bank's bytes: the stage is completed with them, whole stages are skipped without reading
 * (flushing them would find nothing to program or erase), and the rest is staged as usual. */
static et_status_t et_skip(et_commit_t *c, const uint8_t *src, uint32_t n)
{
    uint32_t whole;
    et_status_t st;
    if (c->stage_fill > 0) {
        uint32_t take = c->stage_size - c->stage_fill;
        take = take < n ? take : n;
        if ((st = et_feed(c, src, take)) != ET_OK) {
            return st;
        }
        src += take;
        n -= take;
    }
    if (c->stage_fill == 0) {
        whole = n - n % c->stage_size;
        c->stage_pos += whole;
        c->next_byte += whole;
        src += whole;
        n -= whole;
    }
    return et_feed(c, src, n);
}

/* Feed the active tensor's bytes [next_byte, upto): the rows the caller did not give. When the target
 * bank is known to equal the active one outside the chunks the last commit was given, only those
 * chunks are compared; the others are skipped. */
static et_status_t et_feed_active(et_commit_t *c, const et_commit_tensor_t *t, uint32_t upto)
{
    const uint8_t *src = et_active_bytes(c, t);
    uint32_t chunk_bytes = et_chunk_rows(t) * t->row_bytes;
    if (!t->known) {
        return et_feed(c, src + c->next_byte, upto - c->next_byte);
    }
    while (c->next_byte < upto) {
        uint32_t k = c->next_byte / chunk_bytes;
        uint32_t dirty = et_chunk_dirty(t, k);
        uint64_t end = (uint64_t)(k + 1u) * chunk_bytes;
        et_status_t st;
        while (end < upto && et_chunk_dirty(t, (uint32_t)(end / chunk_bytes)) == dirty) {
            end += chunk_bytes;
        }
        if (end > upto) {
            end = upto;
        }
        st = dirty ? et_feed(c, src + c->next_byte, (uint32_t)end - c->next_byte)
                   : et_skip(c, src + c->next_byte, (uint32_t)end - c->next_byte);
        if (st != ET_OK) {
            return st;
        }
    }
    return ET_OK;
}

/* An abandoned commit: the target bank holds an unknown mix, so the next commit compares all of it. */
static et_status_t et_fail(et_commit_t *c, et_status_t st)
{
    c->tensors[c->busy_slot].known = 0;
    c->busy = 0;
    return st;
}

/* The active record must survive until the new one is durable. (The newest
 * record differs from it only after a CRC fallback at open, and then names a
 * bank that failed its CRC: losing it loses nothing.) */
static int et_slot_protected(const et_commit_tensor_t *t, uint32_t slot)
{
    return (int32_t)slot == t->active_slot;
}

static int et_page_protected(const et_commit_t *c, const et_commit_tensor_t *t, uint32_t slot)
{
    uint32_t per_page = c->nvm->erase_unit / c->record_bytes;
    uint32_t page = slot / per_page;
    return t->active_slot >= 0 && (uint32_t)t->active_slot / per_page == page;
}

static int et_slot_clean(const et_commit_t *c, uint32_t offset)
{
    uint32_t i;
    for (i = 0; i < c->record_bytes; i++) {
        if (c->nvm->base[offset + i] != c->nvm->erased_value) {
            return 0;
        }
    }
    return 1;
}

/* Write the record to the next usable ring slot; returns the slot in *slot. */
static et_status_t et_write_record(et_commit_t *c, et_commit_tensor_t *t, const uint8_t *rec, uint32_t *slot)
{
    uint32_t s = t->head < 0 ? 0 : ((uint32_t)t->head + 1) % t->ring_slots;
    uint32_t tries;
    uint32_t eu = c->nvm->erase_unit;
    for (tries = 0; tries < t->ring_slots; tries++, s = (s + 1) % t->ring_slots) {
        uint32_t off = t->ring_offset + s * c->record_bytes;
        et_status_t st;
        if (et_slot_protected(t, s)) {
            continue;
        }
        if (eu != 0 && !et_slot_clean(c, off)) {
            uint32_t page_off;
            if (et_page_protected(c, t, s)) {
                continue; /* a dirty slot beside a record we must keep: try the next one */
            }
            page_off = off - (off - t->ring_offset) % eu;
            c->stats.erase_ops += 1;
            st = et_hal_result(c, c->nvm->erase(c->nvm, page_off, eu));
            if (st != ET_OK) {
                return st;
            }
            if (!et_slot_clean(c, off)) {
                c->stats.record_retries += 1;
                continue;
            }
        }
        c->stats.record_bytes += c->record_bytes;
        st = et_hal_result(c, et_program(c, off, rec, c->record_bytes));
        if (st != ET_OK) {
            return st;
        }
        if (memcmp(c->nvm->base + off, rec, c->record_bytes) == 0) {
            *slot = s;
            return ET_OK;
        }
        c->stats.record_retries += 1;
    }
    return ET_ERR_WORN;
}

et_status_t et_commit_begin(et_commit_t *c, uint16_t tensor)
{
    et_commit_tensor_t *t = et_tensor_of(c, tensor);
    if (t == NULL) {
        return ET_ERR_ARG;
    }
    if (c->busy) {
        return ET_ERR_STATE;
    }
    c->busy = 1;
    c->busy_slot = et_slot_of(c, tensor);
    c->target = t->active == ET_COMMIT_BANK_A ? ET_COMMIT_BANK_B : ET_COMMIT_BANK_A;
    c->next_byte = 0;
    c->stage_fill = 0;
    c->stage_pos = 0;
    c->derive = t->active != ET_COMMIT_FACTORY; /* the factory image's CRC is not at hand */
    c->bank_worn = 0;
    c->given[0] = 0;
    c->given[1] = 0;
    c->dreg = 0;
    c->dpos = 0;
    return ET_OK;
}

/* The tensor whose commit is open: ET_ERR_ARG for no handle or an unknown tensor, ET_ERR_STATE when
 * no commit of this tensor is open. */
static et_status_t et_busy_tensor(et_commit_t *c, uint16_t tensor, et_commit_tensor_t **t)
{
    if (c == NULL || (*t = et_tensor_of(c, tensor)) == NULL) {
        return ET_ERR_ARG;
    }
    if (!c->busy || et_slot_of(c, tensor) != c->busy_slot) {
        return ET_ERR_STATE;
    }
    return ET_OK;
}

et_status_t et_commit_rows(et_commit_t *c, uint16_t tensor, uint32_t first_row, uint32_t n_rows, const int8_t *rows)
{
    et_commit_tensor_t *t;
    uint64_t start;
    et_status_t st;
    if ((st = et_busy_tensor(c, tensor, &t)) != ET_OK) {
        return st;
    }
    start = (uint64_t)first_row * t->row_bytes;
    if ((rows == NULL && n_rows > 0) || first_row > t->rows || n_rows > t->rows - first_row || start < c->next_byte) {
        return ET_ERR_ARG;
    }
    if (n_rows > 0) {
        uint32_t per = et_chunk_rows(t);
        uint32_t k;
        uint32_t len = n_rows * t->row_bytes;
        for (k = first_row / per; k <= (first_row + n_rows - 1u) / per; k++) {
            c->given[k >> 5] |= 1u << (k & 31u);
        }
        if (c->derive) {
            /* Register of (new XOR active) so far: carried over the unchanged bytes since dpos, then
             * extended by these rows' difference (et_commit_end turns it into the new bank's CRC). */
            (void)et_crc32_combine(&c->dreg, 0, (uint32_t)start - c->dpos);
            c->dpos = (uint32_t)start + len;
        }
    }
    st = et_feed_active(c, t, (uint32_t)start);
    if (st == ET_OK && c->derive && n_rows > 0) {
        const uint8_t *act = et_active_bytes(c, t) + start;
        uint32_t reg = c->dreg;
        if (c->nvm->erase_unit == 0) { /* the CRC and the compare in one pass */
            st = et_feed_rows(c, t, (const uint8_t *)rows, act, n_rows * t->row_bytes, &reg);
        } else {
            uint32_t x = ~reg;
            (void)et_crc32_xor(&x, (const uint8_t *)rows, act, n_rows * t->row_bytes);
            reg = ~x;
            st = et_feed(c, (const uint8_t *)rows, n_rows * t->row_bytes);
        }
        c->dreg = reg;
    } else if (st == ET_OK) {
        st = et_feed(c, (const uint8_t *)rows, n_rows * t->row_bytes);
    }
    return st == ET_OK ? ET_OK : et_fail(c, st);
}

et_status_t et_commit_end(et_commit_t *c, uint16_t tensor)
{
    et_commit_tensor_t *t;
    uint8_t *rec;
    uint32_t pad_to;
    uint32_t slot = 0;
    uint32_t crc;
    et_status_t st;
    if ((st = et_busy_tensor(c, tensor, &t)) != ET_OK) {
        return st;
    }
    st = et_feed_active(c, t, t->bytes);
    if (st != ET_OK) {
        return et_fail(c, st);
    }
    if (c->stage_fill > 0) {
        uint32_t unit = c->nvm->erase_unit != 0 ? c->nvm->erase_unit : c->nvm->program_unit;
        const uint8_t *cur = c->nvm->base + t->bank_offset[c->target] + c->stage_pos;
        pad_to = et_round_up(c->stage_fill, unit);
        if (c->nvm->erase_unit != 0) {
            memset(c->stage + c->stage_fill, c->nvm->erased_value, pad_to - c->stage_fill);
        } else {
            memcpy(c->stage + c->stage_fill, cur + c->stage_fill, pad_to - c->stage_fill);
        }
        st = et_flush(c, c->stage, pad_to);
        if (st != ET_OK) {
            return et_fail(c, st);
        }
    }
    if (c->derive && !c->bank_worn) {
        /* Every target byte now holds what was streamed: the active bank's bytes outside the given
         * rows. CRC-32 is affine, so for equal lengths crc(new) = crc(active) XOR the register of
         * (new XOR active), which is zero outside the given rows: no pass over the bank. */
        crc = c->dreg;
        (void)et_crc32_combine(&crc, 0, t->bytes - c->dpos);
        crc ^= t->crc;
    } else {
        /* From the factory image, or after a worn report: the CRC of what the cells hold. */
        crc = et_crc32_update(0, c->nvm->base + t->bank_offset[c->target], t->bytes);
    }
    rec = c->stage; /* free after the last flush; at least record_bytes long */
    memset(rec, c->nvm->erase_unit != 0 ? c->nvm->erased_value : 0xFF, c->record_bytes);
    et_put_u32(rec, t->next_seq);
    rec[4] = (uint8_t)t->id;
    rec[5] = (uint8_t)(t->id >> 8);
    rec[6] = c->target;
    rec[7] = ET_COMMIT_MAGIC;
    et_put_u32(rec + 8, crc);
    et_put_u32(rec + 12, et_record_crc(c->tag, rec));
    st = et_write_record(c, t, rec, &slot);
    if (st != ET_OK) {
        return et_fail(c, st);
    }
    /* The bank just left holds the previous version, which the new one equals outside the given
     * chunks, unless it was the factory image that was active or cells did not take their values. */
    t->known = (uint8_t)(t->active != ET_COMMIT_FACTORY && !c->bank_worn);
    t->dirty[0] = c->given[0];
    t->dirty[1] = c->given[1];
    t->crc = crc;
    t->active = c->target;
    t->seq = t->next_seq;
    t->next_seq += 1;
    t->head = (int32_t)slot;
    t->active_slot = (int32_t)slot;
    c->stats.commits += 1;
    c->busy = 0;
    return ET_OK;
}

et_status_t et_commit_abort(et_commit_t *c, uint16_t tensor)
{
    et_commit_tensor_t *t;
    et_status_t st = et_busy_tensor(c, tensor, &t);
    if (st != ET_OK) {
        return st;
    }
    return et_fail(c, ET_OK); /* bytes of the target bank may have been written */
}
