/*
 * svg.h - the few chart pieces `moe report` draws, written as inline SVG
 * into an HTML page: a line chart (several series, gaps at NaN, legend) and
 * a heatmap (row and column labels, a color bar, optional cell values). No
 * scripts, no external resources: the page shows the same in any browser.
 */
#ifndef MOE_CLI_SVG_H
#define MOE_CLI_SVG_H

#include <stdio.h>

/* One series of a line chart: y[i] at x[i]; a NaN y breaks the line. */
typedef struct svg_series {
    const char *label;  /* legend text (NULL: not in the legend) */
    const double *x, *y;/* [n] */
    int n;
    const char *color;  /* "#rrggbb" */
    int markers;        /* 1: a dot at each point (sparse series, e.g. val loss) */
    int dashed;
} svg_series;

typedef struct svg_chart {
    int id;             /* unique on the page (names the chart's clip path) */
    const char *xlabel, *ylabel;
    int width, height;  /* pixels of the chart with one legend row; each
                           further row adds 18 */
    int y_zero;         /* 1: the y range includes 0 */
    int integer_y;      /* 1: y ticks are whole numbers (counts) */
} svg_chart;

void svg_line_chart(FILE *f, const svg_chart *c, const svg_series *s, int n_series);

typedef enum {
    SVG_MAP_SEQUENTIAL = 0, /* dark blue -> green -> yellow (viridis-like) over [vmin, vmax] */
    SVG_MAP_DIVERGING,      /* blue -> white at vmid -> red */
} svg_colormap;

typedef struct svg_heatmap {
    int rows, cols;
    const double *v;                 /* [rows][cols]; NaN: no data (grey) */
    double vmin, vmid, vmax;         /* values past vmin / vmax saturate */
    svg_colormap map;
    const char *const *row_labels;   /* [rows], or NULL: 0, 1, ... */
    const char *const *col_labels;   /* [cols], or NULL: a numeric axis x0..x1 */
    double x0, x1;                   /* the x value at the left / right edge */
    const char *xlabel, *ylabel;
    const char *value_label;         /* color bar caption */
    const char *cell_fmt;            /* printf format of cell values and tooltips */
    double cell_scale;               /* cell text shows v * cell_scale (e.g. 100 for %) */
    int annotate;                    /* 1: write values in cells large enough */
    int width, height;
    /* A cell's tooltip text (escaped by the callee), or NULL: "row / column: value" */
    void (*tip)(FILE *f, void *user, int row, int col);
    void *tip_user;
} svg_heatmap;

void svg_heatmap_draw(FILE *f, const svg_heatmap *h);

/* The i-th color of a 20-color categorical palette. */
const char *svg_palette(int i);

/* Write s with &, <, >, " and ' escaped (HTML text and attributes). */
void svg_escape(FILE *f, const char *s);

/* A short axis number: 0.003, 1.5, 12.3k, 4.1M, 2e-05. */
void svg_fmt_num(char *buf, size_t size, double v);

#endif
