/*
 * repack.c - the routed experts rewritten at load in the packed layout the
 * AVX2 kernels read (kernels/quant.h "Interleaved weights";
 * moe_load_opts.repack).
 *
 * Each routed expert's gate, up and down of a type with a packed form
 * (Q8_0, Q4_K, Q5_K, Q6_K, IQ4_XS) whose rows are a multiple of 8 is packed in
 * place, in the file's bytes as read into memory, and its mat takes the packed dtype; everything
 * else stays as stored. Only the routed experts: a prompt gives each a few
 * rows of x, so the interleave the stored kernels do on every call is a
 * large share of their work (a third at 8 rows), while attention, the
 * dense and shared FFNs and the output head see every token of a prompt
 * (the interleave spread over all of them) and, in decode, Q8_0 reads
 * faster as stored (quant_avx2.c's gemv_streams) than packed (IQ4_XS
 * decodes faster packed, Q4_K and Q6_K about even; their dense matrices
 * could follow). The products on every path give what the stored matrix
 * gives (the same bits on the AVX2 path for every count of x rows), so
 * packing changes speed, not results. It needs the weights read into memory (a
 * mapped file's pages would be copied one by one) and no expert memory
 * budget (experts read on demand stay as the file has them).
 */
#include "model/model.h"

#include "base/err.h"
#include "base/mapfile.h"
#include "formats/gguf.h"
#include "kernels/kernels.h"
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

/* The packed dtype of t (dtype_from_ggml maps no id to one). */
static dtype packed_dtype(dtype t) {
    switch (t) {
    case DT_Q8_0: return DT_Q8_0_R8;
    case DT_Q4_K: return DT_Q4_K_R8;
    case DT_Q5_K: return DT_Q5_K_R8;
    case DT_Q6_K: return DT_Q6_K_R8;
    case DT_IQ4_XS: return DT_IQ4_XS_R8;
    default: return DT_COUNT;
    }
}

/* Whether w would be packed. */
static int packable(const mat *w) {
    const int qt = dtype_to_ggml(w->type);
    return qt >= 0 && qt_packed_of(qt) >= 0 && packed_dtype(w->type) != DT_COUNT && w->data &&
           w->rows % QPACK_ROWS == 0;
}

static int64_t pack_mat(mat *w) {
    if (!packable(w)) return 0;
    if (quant_pack(dtype_to_ggml(w->type), (void *)w->data, w->rows, w->cols)) return -1;
    w->type = packed_dtype(w->type);
    return 1;
}

int model_repack_pays(const moe_model *m) {
    if (m->cache || kernels_default()->isa != ISA_AVX2) return 0;
    enum { CAP = 64 };
    mapped_file *f[CAP];
    const char *path[CAP];
    const int nf = weight_files((moe_model *)m, f, path, CAP);
    for (int i = 0; i < nf; i++)
        if (!f[i]->span) return 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const layer_w *L = &m->layers[l];
        if (m->cfg.layer[l].moe && L->experts && m->cfg.layer[l].n_experts > 0 && packable(&L->experts[0].gate))
            return 1;
    }
    return 0;
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
    for (int i = 0; i < nf; i++) mapped_set_writable(f[i], 0);
    return rc;
}
