/*
 * moe_cache.h - run a model larger than memory: the routed experts stay in
 * the model file and are read on demand into a fixed pool of expert slots
 * (the budget); everything else is resident. See docs/CACHE.md.
 *
 * A model loaded with a budget (moe_model_load_opts, mem > 0) owns one
 * cache. Sessions of that model use it once attached
 * (moe_cache_attach): the cache becomes the session's expert provider
 * (moe.h), so the engine tells it which experts a layer needs (want), asks
 * which are ready, and acquires them in waves of at most max_held. Reads go
 * straight from the file into the slots with direct I/O (O_DIRECT; where
 * the file system refuses it, buffered reads whose pages are dropped from
 * the page cache after each read), in a pool of reader threads, in the order
 * they were asked for. Logits are bit-identical to a run without a budget,
 * unless a resident low-precision fallback is asked for (moe_load_opts.fallback).
 */
#ifndef MOE_CACHE_H
#define MOE_CACHE_H

#include <stdint.h>

#include "moe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    MOE_CACHE_LRU = 0,  /* evict the expert used longest ago */
    MOE_CACHE_LFU,      /* evict the expert used least often (counts kept across evictions) */
    MOE_CACHE_HISTORY,  /* evict the expert whose next use is estimated farthest away: per
                           layer, the experts' decayed routing frequency and the layers
                           still to run before that layer comes again (docs/CACHE.md) */
} moe_cache_policy;

/* The policy when none is given. */
#define MOE_CACHE_POLICY_DEFAULT MOE_CACHE_HISTORY
/* Later MoE layers the engine is asked to predict when none is given
 * (moe_expert_provider.predict). */
#define MOE_CACHE_PREFETCH_DEFAULT 1

typedef struct moe_load_opts {
    int64_t mem;             /* > 0: bytes of the expert slot pool; 0: no cache (all resident) */
    moe_cache_policy policy; /* eviction policy */
    int prefetch;            /* later MoE layers to predict; < 0: MOE_CACHE_PREFETCH_DEFAULT */
    int readers;             /* reader threads; 0: 4; < 0: none (each read is done by the
                                acquire that needs it, queued reads included) */
    int buffered;            /* 1: never O_DIRECT; buffered reads whose pages are dropped
                                from the page cache after each (what a file system that
                                refuses O_DIRECT gets anyway) */
    int fallback;            /* 0: none. A quantized moe_qtype (moe_quant.h, e.g.
                                MOE_QTYPE_Q2_K, Q3_K, Q4_K): every routed expert is
                                quantized to it once at load into resident memory,
                                inside `mem` (the slot pool gets the rest), and an
                                expert not in a slot when it is needed is computed
                                from that copy instead of waiting for its read (which
                                goes on, for later uses). Changes the logits. A matrix
                                whose rows do not fit the type's blocks takes `moe
                                quantize`'s substitute (Q2_K, Q3_K: Q4_0; Q4_K: Q5_0).
                                With readers < 0 nothing is read at all: every expert
                                is computed from the copy. */
    int64_t read_part;       /* bytes a reader reads at once: each of an expert's ranges
                                is split into parts of about this size (whole 4096-byte
                                blocks) that idle readers take in parallel; 0: 1 MiB */
    int repack;              /* The routed experts' matrices of a type with a packed form
                                (Q8_0, Q4_K, Q5_K, Q6_K, IQ4_XS) rewritten at load, in memory, in the interleaved
                                layout the AVX2 kernels read, so no product interleaves
                                them again (prefill faster there; the other paths unpack
                                each row, slowly). The same logits as unpacked.
                                0 (the default): packed when the CPU's default kernels
                                are the AVX2 ones (no AVX-512; MOE_ISA=avx2) and the
                                weights are read into memory without `mem`; otherwise
                                left as stored. 1: packed, or an error when the file is
                                mapped or `mem` is set. -1: never.
                                moe_model_stats.packed counts the matrices. */
} moe_load_opts;

/* Like moe_model_load. With o->mem > 0 the weight files are memory-mapped
 * (never read whole), everything but the routed experts is copied into
 * anonymous memory, and the routed experts are left to the cache: their
 * pages of the mapping are never touched. Errors besides moe_model_load's:
 * a budget below one layer's needs (its top_k experts of the largest
 * expert's slot), naming the minimum; experts that a loader re-lays at load
 * (transformers' fused gpt_oss tensors), which are not in the file as used. */
int moe_model_load_opts(moe_model **out, const char *path, const moe_load_opts *o, moe_err *err);

typedef struct moe_cache moe_cache;

/* The model's cache; NULL when it was loaded without a budget. */
moe_cache *moe_model_cache(const moe_model *m);
/* Make the cache the session's expert provider (s must run c's model). */
void moe_cache_attach(moe_cache *c, moe_session *s);
/* Tell the cache that n more tokens ran (for the bytes read per token). */
void moe_cache_add_tokens(moe_cache *c, int64_t n);

#define MOE_CACHE_MAX_LAYER_STATS MOE_MAX_LAYERS
/* Places in a guess (the engine passes it likeliest first) counted apart;
 * the places past the last share its count. */
#define MOE_CACHE_GUESS_PLACES 16

typedef struct moe_cache_layer_stats {
    int64_t predicted;         /* experts predicted for this layer */
    int64_t predicted_used;    /* of those, used by the layer */
    int64_t used;              /* experts the layer used after a prediction was made for it */
} moe_cache_layer_stats;

typedef struct moe_cache_stats {
    int64_t mem;               /* the budget, bytes */
    int64_t slot_bytes;        /* one slot: the largest expert and its alignment slack */
    int n_slots;               /* slots in the pool */
    int max_held;              /* most slots one forward holds at once */
    int prefetch;              /* predicted layers (provider.predict) */
    moe_cache_policy policy;
    int direct_io;             /* 1: every file read with O_DIRECT; 0: some buffered */
    char io_note[160];         /* how the files are read, and why when not direct */
    int64_t resident_bytes;    /* weights copied into memory at load (all but routed experts
                                  and an untied embedding table) */
    int64_t mapped_bytes;      /* an untied token-embedding table left mapped: a token
                                  pages in its own row only */
    int64_t expert_bytes;      /* routed experts' bytes in the file(s) */
    int64_t hits;              /* experts a layer needed that were in a slot or being read
                                  for a prediction */
    int64_t misses;            /* experts a layer needed that had to be read */
    int64_t reads;             /* expert reads done */
    int64_t bytes_read;        /* bytes read from the files (aligned ranges) */
    int64_t tokens;            /* tokens counted by moe_cache_add_tokens */
    int64_t prefetch_issued;   /* reads queued for a predicted expert */
    int64_t prefetch_used;     /* of those, used by their layer */
    int64_t prefetch_wasted;   /* of those, read but not used when their layer ran, or evicted first */
    int64_t prefetch_cancelled; /* of those, dropped before their read began: the guess was
                                  wrong (its layer ran without it) or a newer one replaced it */
    int64_t prefetch_dropped;  /* predicted experts in no slot that were not read: no slot
                                  could be taken, or the layer's guesses have not paid */
    int64_t predicted;         /* experts predicted (all layers) */
    int64_t predicted_used;    /* of those, used by the layer */
    int64_t used_after_prediction; /* experts used by layers that had a prediction */
    int64_t predicted_at[MOE_CACHE_GUESS_PLACES];      /* experts predicted at each place
                                                         in their guess (0: likeliest) */
    int64_t predicted_at_used[MOE_CACHE_GUESS_PLACES]; /* of those, used by the layer */
    int64_t stalls;            /* acquire calls that waited for a read or a slot */
    int64_t fallbacks;         /* acquires answered with the resident low-precision copy
                                  (the expert was not in a READY slot) */
    int64_t fallback_dropped;  /* reads queued for a layer's pass that took the copy,
                                  dropped unread when the layer came again without
                                  the expert */
    int fallback_type;         /* moe_load_opts.fallback (0: none) */
    int64_t fallback_bytes;    /* the copy's bytes (inside mem) */
    double fallback_seconds;   /* time to build it at load */
    double stall_seconds;      /* time they waited */
    double read_seconds;       /* time spent in reads, summed over the threads reading */
    double read_busy_seconds;  /* wall time with at least one read in flight: bytes_read /
                                  this is the bandwidth the reads got together */
    int n_layers;              /* entries of layer[] (the model's layers) */
    moe_cache_layer_stats layer[MOE_CACHE_MAX_LAYER_STATS];
} moe_cache_stats;

void moe_cache_stats_get(const moe_cache *c, moe_cache_stats *st);
void moe_cache_stats_reset(moe_cache *c);
/* "lru", "lfu", "history"; parse: 0 or -1 */
const char *moe_cache_policy_name(moe_cache_policy p);
int moe_cache_policy_parse(const char *s, moe_cache_policy *p);
/* Bytes: "512M", "16G", "1.5G", "64KiB", "4096", "4096B": K, M, G, T (and
 * KiB, MiB, ...) are powers of 1024, "KB", "MB", "GB", "TB" powers of 1000
 * (as moe_quant_parse_budget reads them); at least 1 byte. 0, or -1 for
 * anything else (signs, exponents, spaces, other suffixes). */
int moe_parse_size(const char *s, int64_t *out);

#ifdef __cplusplus
}
#endif
#endif /* MOE_CACHE_H */
