/*
 * fuzz_util.h - what the libFuzzer targets share: a scratch directory for
 * parsers that read a path (the input is written there before each run), and
 * the one way a target reports a broken invariant (a message and abort(),
 * which libFuzzer records as a crash with its input).
 */
#ifndef MOE_FUZZ_UTIL_H
#define MOE_FUZZ_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline void fuzz_die(const char *what, const char *msg) {
    fprintf(stderr, "fuzz: %s: %s\n", what, msg);
    abort();
}

static char fuzz_scratch[128];

/* At exit: the scratch directory and the files in it go. */
static void fuzz_cleanup(void) {
    DIR *d = opendir(fuzz_scratch);
    if (!d) return;
    char p[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", fuzz_scratch, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(fuzz_scratch);
}

/* DIR/name, DIR a per-process directory in /dev/shm (or /tmp), made once. */
static inline const char *fuzz_path(const char *name) {
    static char path[256];
    const char *dir = fuzz_scratch;
    if (!dir[0]) {
        snprintf(fuzz_scratch, sizeof fuzz_scratch, "%s/moe-fuzz.%d",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
        if (mkdir(dir, 0700) != 0) fuzz_die(dir, "cannot create the scratch directory");
        atexit(fuzz_cleanup);
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static inline const char *fuzz_dir(void) {
    const char *p = fuzz_path("x");
    static char dir[256];
    snprintf(dir, sizeof dir, "%.*s", (int)(strlen(p) - 2), p);
    return dir;
}

/* Write data[size] to the scratch file `name`; its path. */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        fuzz_die(path, "cannot write the input");
    return path;
}

/* A rejected input must say why. */
static inline void fuzz_rejected(const char *what, const char *msg) {
    if (!msg[0]) fuzz_die(what, "refused without a message");
}

#endif
