/*
 * edgetrain — the firmware runner: the model is the .etm blob at the start
 * of the NVM region; commands come through the input mailbox (et_mailbox.h),
 * results go to the output mailbox. Everything the core needs is static or
 * in the arena the linker script leaves between .bss and the stack.
 */
#include <stdint.h>
#include <string.h>

#include "edgetrain/edgetrain.h"
#include "et_mailbox.h"
#include "et_port.h"

static et_model_t et_fw_model;
static et_nvm_t et_fw_nvm;
static et_train_t *et_fw_ctx;

static et_mb_out_t *et_fw_out(void)
{
    return (et_mb_out_t *)(void *)(__et_io_start + ET_MB_OUT);
}

static uint8_t *et_fw_payload(void)
{
    return __et_io_start + ET_MB_OUT + sizeof(et_mb_out_t);
}

static uint32_t et_fw_arena_bytes(void)
{
    return (uint32_t)(__et_arena_end - __et_arena_start);
}

static et_status_t et_fw_init(const et_mb_init_t *in, et_mb_out_t *out)
{
    et_train_config_t cfg;
    uint32_t i;
    et_status_t st;
    et_fw_ctx = NULL;
    if ((st = et_port_nvm_init(&et_fw_nvm)) != ET_OK) {
        return st;
    }
    st = et_etm_parse(et_fw_nvm.base, et_fw_nvm.size, (in->flags & ET_MB_INIT_CHECK_CRC) ? 0u : ET_ETM_SKIP_BLOB_CRC,
                      &et_fw_model, NULL, NULL);
    if (st != ET_OK) {
        return st;
    }
    et_train_config_default(&cfg);
    cfg.optimizer = (uint8_t)in->optimizer;
    cfg.conv_per_pixel = (uint8_t)in->conv_per_pixel;
    cfg.bn_warm = (uint8_t)in->bn_warm;
    cfg.lr_weight = in->lr_weight;
    cfg.lr_weight_exp = in->lr_weight_exp;
    cfg.lr_bias = in->lr_bias;
    cfg.lr_bias_exp = in->lr_bias_exp;
    cfg.seed = in->seed;
    cfg.lrt.rank = (uint8_t)in->lrt_rank;
    cfg.lrt.unbiased = (uint8_t)in->lrt_unbiased;
    cfg.lrt.maxnorm = (uint8_t)in->lrt_maxnorm;
    cfg.lrt.gs_passes = (uint8_t)in->lrt_gs_passes;
    cfg.lrt.batch_conv = (uint16_t)in->lrt_batch_conv;
    cfg.lrt.batch_dense = (uint16_t)in->lrt_batch_dense;
    cfg.lrt.eta0_q24 = in->lrt_eta0_q24;
    cfg.lrt.rho_min_ppm = in->lrt_rho_min_ppm;
    cfg.lrt.kappa_th = in->lrt_kappa_th;
    cfg.lrt.reorth_terms = (uint16_t)in->lrt_reorth_terms;
    cfg.lrt.conv_term_batch = (uint8_t)in->lrt_conv_term_batch;
    for (i = 0; i < ET_MAX_LAYERS; i++) {
        cfg.lrt_rank[i] = (uint8_t)in->layer_rank[i];
    }
    cfg.commit_stage_bytes = in->commit_stage_bytes;
    cfg.ring_slots = (uint16_t)in->ring_slots;
    out->arena = et_fw_arena_bytes();
    /* The arena is one static block: anything that does not fit the plan fails here with the need. */
    st = et_train_init(&et_fw_ctx, __et_arena_start, et_fw_arena_bytes(), &et_fw_model, &et_fw_nvm, &cfg,
                       &out->required);
    if (st == ET_OK && in->counters) {
        st = et_train_set_cell_counter(et_fw_ctx, (uint32_t *)(void *)(__et_io_start + ET_MB_COUNTERS),
                                       et_fw_model.image_size);
    }
    if (st != ET_OK) {
        et_fw_ctx = NULL;
    }
    return st;
}

static et_status_t et_fw_samples(const et_mb_cmd_t *cmd, et_mb_out_t *out, int train)
{
    const et_layer_t *first = &et_fw_model.layers[0];
    uint32_t input_len = (uint32_t)first->in.h * first->in.w * first->in.c;
    uint32_t stride = ((input_len + 3u) & ~3u) + 4u;
    const uint8_t *rec = (const uint8_t *)(cmd + 1);
    uint16_t *pred = (uint16_t *)(void *)et_fw_payload();
    et_train_result_t r;
    et_status_t st = ET_OK;
    uint32_t i;
    if ((uint64_t)cmd->arg0 * stride > cmd->bytes) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < cmd->arg0; i++, rec += stride) {
        uint32_t label;
        memcpy(&label, rec + stride - 4u, 4u);
        st = train ? et_train_step(et_fw_ctx, rec, input_len, (uint16_t)(label > 0xFFFFu ? 0xFFFFu : label), &r)
                   : et_train_predict(et_fw_ctx, rec, input_len, &r);
        if (st != ET_OK) {
            break;
        }
        pred[i] = r.predicted;
        out->done = i + 1;
        out->bytes = 2u * (i + 1);
    }
    return st;
}

static et_status_t et_fw_dump(et_mb_out_t *out)
{
    const et_commit_t *c;
    uint8_t *dst = et_fw_payload();
    uint16_t k;
    et_status_t st = et_train_commit(et_fw_ctx, &c);
    for (k = 0; st == ET_OK && k < c->n_tensors; k++) {
        const int8_t *src;
        if ((st = et_commit_active_tensor(c, c->tensors[k].id, &src)) == ET_OK) {
            memcpy(dst + out->bytes, src, c->tensors[k].bytes);
            out->bytes += c->tensors[k].bytes;
        }
    }
    return st;
}

static et_status_t et_fw_stats(et_mb_out_t *out)
{
    uint8_t *dst = et_fw_payload();
    et_train_nvm_stats_t s;
    uint64_t v[5];
    uint16_t i;
    et_status_t st = et_train_nvm_stats(et_fw_ctx, &s);
    if (st != ET_OK) {
        return st;
    }
    v[0] = s.commits;
    v[1] = s.commits_lost;
    v[2] = s.worn_reports;
    v[3] = s.bytes_programmed;
    v[4] = s.record_bytes;
    memcpy(dst, v, sizeof v);
    out->bytes = sizeof v;
    for (i = 0; i < et_fw_model.n_layers; i++) {
        et_train_lrt_stats_t l;
        uint32_t w[4];
        if (et_train_lrt(et_fw_ctx, i, NULL, &l) != ET_OK) {
            continue; /* no LRT, or a layer without weights */
        }
        w[0] = l.terms;
        w[1] = l.skipped;
        w[2] = l.flushes;
        w[3] = l.applied;
        memcpy(dst + out->bytes, w, sizeof w);
        out->bytes += sizeof w;
    }
    return ET_OK;
}

static et_status_t et_fw_execute(const et_mb_cmd_t *cmd, et_mb_out_t *out)
{
    if (cmd->magic != ET_MB_MAGIC) {
        return ET_ERR_CORRUPT;
    }
    if (cmd->command == ET_MB_INIT) {
        return cmd->bytes < sizeof(et_mb_init_t) ? ET_ERR_ARG : et_fw_init((const et_mb_init_t *)(const void *)(cmd + 1), out);
    }
    if (et_fw_ctx == NULL) {
        return ET_ERR_STATE; /* INIT first, and INIT must have succeeded */
    }
    switch (cmd->command) {
    case ET_MB_TRAIN:
        return et_fw_samples(cmd, out, 1);
    case ET_MB_PREDICT:
        return et_fw_samples(cmd, out, 0);
    case ET_MB_CHECKPOINT:
        return et_train_checkpoint(et_fw_ctx);
    case ET_MB_DUMP:
        return et_fw_dump(out);
    case ET_MB_STATS:
        return et_fw_stats(out);
    default:
        return ET_ERR_ARG;
    }
}

int main(void)
{
    uint32_t at = ET_MB_IN;
    uint32_t commands = 0;
    for (;;) {
        const et_mb_cmd_t *cmd = (const et_mb_cmd_t *)(const void *)(__et_io_start + at);
        et_mb_out_t *out = et_fw_out();
        if (cmd->magic == ET_MB_MAGIC && cmd->command == ET_MB_HALT) {
            /* The output keeps the previous command's payload (e.g. a DUMP) for the board to hand over. */
            et_port_exit((int32_t)cmd->arg0, et_fw_payload(), out->magic == ET_MB_MAGIC ? out->bytes : 0u);
            return (int)cmd->arg0;
        }
        memset(out, 0, sizeof(*out));
        out->status = et_fw_execute(cmd, out);
        out->command = cmd->command;
        out->commands = ++commands;
        out->magic = ET_MB_MAGIC;
        if (cmd->next != 0 && out->status == ET_OK) {
            at = cmd->next;
        } else {
            at = ET_MB_IN;
            et_port_wait();
        }
    }
}
