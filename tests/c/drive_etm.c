/*
 * Sanitizer driver: every .etm file named on the command line (or found in a named directory)
 * goes through parse -> plan -> init -> steps -> checkpoint -> recovery (drive.c). Built by
 * `make test-c-driver` with -fsanitize=address,undefined -fno-sanitize-recover=all, so any
 * memory error or undefined behaviour in the core stops the run. Exit status 0 when every input
 * was handled within the contract; prints one line per input and a summary.
 *
 * Usage: drive_etm [--steps N] [--arena-cap BYTES] PATH...
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "drive.h"

#define DRIVE_MAX_INPUT (8u << 20)

static int drive_file(const char *path, const drive_opts_t *opts, drive_counts_t *total)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t n;
    drive_counts_t c = {0, 0, 0, 0};
    if (f == NULL) {
        fprintf(stderr, "drive_etm: cannot open %s\n", path);
        return 1;
    }
    buf = (uint8_t *)malloc(DRIVE_MAX_INPUT);
    if (buf == NULL) {
        fclose(f);
        return 1;
    }
    n = fread(buf, 1, DRIVE_MAX_INPUT, f);
    fclose(f);
    drive_blob(buf, n, opts, &c);
    free(buf);
    printf("%s: %zu bytes, %s", path, n, c.rejected ? "rejected by the parser" : "parsed");
    if (!c.rejected) {
        printf(", %u optimizer runs trained, %u over the arena cap, %u refused by init", c.trained, c.capped, c.refused);
    }
    printf("\n");
    total->rejected += c.rejected;
    total->trained += c.trained;
    total->capped += c.capped;
    total->refused += c.refused;
    return 0;
}

static int is_dir(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int drive_dir(const char *dir, const drive_opts_t *opts, drive_counts_t *total, unsigned *files)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char *names[4096];
    unsigned n = 0, i;
    int bad = 0;
    if (d == NULL) {
        fprintf(stderr, "drive_etm: cannot open directory %s\n", dir);
        return 1;
    }
    while ((e = readdir(d)) != NULL && n < 4096) {
        size_t len = strlen(e->d_name);
        char *path;
        if (e->d_name[0] == '.' || (len > 4 && strcmp(e->d_name + len - 4, ".txt") == 0) ||
            (len > 3 && strcmp(e->d_name + len - 3, ".md") == 0)) {
            continue;
        }
        path = (char *)malloc(strlen(dir) + len + 2);
        if (path == NULL) {
            break;
        }
        sprintf(path, "%s/%s", dir, e->d_name);
        names[n++] = path;
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_names);
    for (i = 0; i < n; i++) {
        if (!is_dir(names[i])) {
            bad |= drive_file(names[i], opts, total);
            *files += 1;
        }
        free(names[i]);
    }
    return bad;
}

int main(int argc, char **argv)
{
    drive_opts_t opts = {16u << 20, 4, 1};
    drive_counts_t total = {0, 0, 0, 0};
    unsigned files = 0;
    int bad = 0;
    int i;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            opts.steps = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--arena-cap") == 0 && i + 1 < argc) {
            opts.arena_cap = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (is_dir(argv[i])) {
            bad |= drive_dir(argv[i], &opts, &total, &files);
        } else {
            bad |= drive_file(argv[i], &opts, &total);
            files++;
        }
    }
    printf("drive_etm: %u inputs: %u rejected by the parser; %u optimizer runs trained (%u steps each, "
           "checkpoint, recovery), %u over the %u-byte arena cap, %u refused by init\n",
           files, total.rejected, total.trained, opts.steps, total.capped, opts.arena_cap, total.refused);
    return bad || files == 0;
}
