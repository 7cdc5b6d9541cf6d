/*
 * repack.c - the matrices of the products rewritten at load in the packed
 * layouts the AVX-512 VNNI kernels read (kernels/quant.h "Interleaved
 * weights"; moe_load_opts.repack).
 *
 * Each matrix that only goes to the matmuls (attention's q, k, v and o
 * projections, the dense and shared FFNs, the routed experts, and the
 * output head when it is not the embedding table) of a type with a packed
 * form (Q8_0) whose rows are a
 * multiple of 16 is packed in place, in the file's bytes as read into
 * memory, and its mat takes the packed dtype; everything else stays as
 * stored. The products on every path give what the stored matrix gives
 * (the same bits on the AVX-512 VNNI path from 2 rows of x; decode within
 * the kernels' tolerance), so packing changes speed, not results. It needs
 * the weights read into memory (a mapped file's pages would be copied one
 * by one) and no expert memory budget (experts read on demand stay as the
 * file has them).
 */
#include "model/model.h"

#include "base/err.h"
#include "base/mapfile.h"
#include "formats/gguf.h"
#include "kernels/quant.h"

/* The model's weight files: n of them into f[] (at most cap). */
static int weight_files(moe_model *m, mapped_file **f, const char **path, int cap) {
    int n = 0;
    if (m->gguf) {
        f[n] = &m->gguf->map;
        path[n++] = m->gguf->path;
    }
    for (int i = 0; i < m->st.n_files && n < cap; i++) {
        f[n] = &m->st.files[i];
        path[n++] = m->st.paths[i];
    }
    return n;
}

static int64_t pack_mat(mat *w) {
    const int qt = dtype_to_ggml(w->type), pt = qt < 0 ? -1 : qt_packed_of(qt);
    if (pt < 0 || !w->data || w->rows % QPACK_ROWS) return 0;
    if (quant_pack(qt, (void *)w->data, w->rows, w->cols)) return -1;
    w->type = DT_Q8_0_R16; /* the one packed type */
    return 1;
}

int model_repack(moe_model *m, int64_t *packed, moe_err *err) {
    *packed = 0;
    if (m->cache)
        return moe_fail(err, "packing the experts at load does not go with an expert memory budget "
                             "(experts read on demand stay as the file has them)");
    enum { CAP = 64 };
    mapped_file *f[CAP];
    const char *path[CAP];
    const int nf = weight_files(m, f, path, CAP);
    for (int i = 0; i < nf; i++)
        if (!f[i]->span)
            return moe_fail(err, "%s: packing the experts at load needs the weights read into memory, "
                                 "and this file is mapped (larger than half the available memory, or MOE_LOAD=mmap)",
                            path[i] ? path[i] : "weights");
    for (int i = 0; i < nf; i++)
        if (mapped_set_writable(f[i], 1)) {
            for (int k = 0; k < i; k++) mapped_set_writable(f[k], 0);
            return moe_fail(err, "%s: could not make the weights writable to pack them", path[i] ? path[i] : "weights");
        }
    int rc = 0;
    for (int l = 0; l < m->cfg.n_layers && !rc; l++) {
        layer_w *L = &m->layers[l];
        /* attention's projections (those of latent attention other than wq
         * and wo are read by rows: left as stored), the dense or shared FFN */
        mat *w[10] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->dense.gate, &L->dense.up, &L->dense.down,
                      &L->shared.gate, &L->shared.up, &L->shared.down};
        for (int k = 0; k < 10 && !rc; k++) {
            int64_t r = pack_mat(w[k]);
            if (r < 0) rc = moe_fail(err, "layer %d: no memory for a group of rows while packing", l);
            else *packed += r;
        }
        if (!m->cfg.layer[l].moe || !L->experts) continue;
        for (int e = 0; e < m->cfg.layer[l].n_experts && !rc; e++) {
            mat *x[3] = {&L->experts[e].gate, &L->experts[e].up, &L->experts[e].down};
            for (int k = 0; k < 3; k++) {
                int64_t r = pack_mat(x[k]);
                if (r < 0) {
                    rc = moe_fail(err, "layer %d expert %d: no memory for a group of rows while packing", l, e);
                    break;
                }
                *packed += r;
            }
        }
    }
    /* the output head, unless it is the embedding table (read row by row) */
    if (!rc && m->lm_head.data != m->embed.data) {
        int64_t r = pack_mat(&m->lm_head);
        if (r < 0) rc = moe_fail(err, "output head: no memory for a group of rows while packing");
        else *packed += r;
    }
    for (int i = 0; i < nf; i++) mapped_set_writable(f[i], 0);
    return rc;
}
