/*
 * file_list.c - see file_list.h.
 */
#include "file_list.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static int push(const char *cmd, file_list *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) goto oom;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) goto oom;
    l->n++;
    return 0;
oom:
    cli_error(cmd, "out of memory");
    return -1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int file_list_add(const char *cmd, file_list *l, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        cli_error(cmd, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) return push(cmd, l, path);
    DIR *d = opendir(path);
    if (!d) {
        cli_error(cmd, "%s: %s", path, strerror(errno));
        return -1;
    }
    int first = l->n, rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *full = malloc(n);
        if (!full) {
            cli_error(cmd, "out of memory");
            rc = -1;
            break;
        }
        snprintf(full, n, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", e->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) rc = push(cmd, l, full);
        free(full);
    }
    closedir(d);
    if (rc == 0 && l->n == first) {
        cli_error(cmd, "%s: a directory with no regular files", path);
        return -1;
    }
    qsort(l->v + first, (size_t)(l->n - first), sizeof *l->v, cmp_str);
    return rc;
}

void file_list_free(file_list *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

int take_repeated(const char *cmd, const char *name, int *argc, char **argv, const char **values,
                  int *n, int max) {
    size_t len = strlen(name);
    int k = 1, only_pos = 0;
    *n = 0;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        if (!only_pos && !strcmp(a, "--")) only_pos = 1;
        if (!only_pos && !strncmp(a, name, len) && (a[len] == 0 || a[len] == '=')) {
            if (a[len] == '=') {
                v = a + len + 1;
            } else if (i + 1 < *argc) {
                v = argv[++i];
            } else {
                cli_error(cmd, "%s needs a value", name);
                return -1;
            }
            if (*n >= max) {
                cli_error(cmd, "%s given more than %d times", name, max);
                return -1;
            }
            values[(*n)++] = v;
            continue;
        }
        argv[k++] = argv[i];
    }
    *argc = k;
    argv[k] = NULL;
    return 0;
}

int make_dirs(const char *cmd, const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        cli_error(cmd, "bad directory name '%s'", path);
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        struct stat st;
        if (stat(buf, &st) != 0) {
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                cli_error(cmd, "%s: cannot create directory: %s", buf, strerror(errno));
                return -1;
            }
        } else if (!S_ISDIR(st.st_mode)) {
            cli_error(cmd, "%s: exists and is not a directory", buf);
            return -1;
        }
        buf[i] = c;
    }
    return 0;
}
