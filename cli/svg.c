/*
 * svg.c - line charts and heatmaps as inline SVG (svg.h). Coordinates are
 * pixels; each chart picks "nice" ticks (1, 2, 5 times a power of ten) so
 * the axis labels are short and never overlap.
 */
#include "svg.h"

#include <math.h>
#include <string.h>

#define FONT "font-family=\"sans-serif\" font-size=\"11\""

/* ------------------------------------------------------------- utilities */

void svg_escape(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

const char *svg_palette(int i) {
    static const char *p[20] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
                                "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
                                "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"};
    return p[(i % 20 + 20) % 20];
}

void svg_fmt_num(char *buf, size_t size, double v) {
    double a = fabs(v);
    if (v == 0) snprintf(buf, size, "0");
    else if (a >= 1e6) snprintf(buf, size, "%.3gM", v / 1e6);
    else if (a >= 1e4) snprintf(buf, size, "%.3gk", v / 1e3);
    else if (a < 1e-3) snprintf(buf, size, "%.2g", v);
    else snprintf(buf, size, "%.4g", v);
}

/* Tick step for about n ticks over [lo, hi]: 1, 2 or 5 times 10^k. */
static double nice_step(double lo, double hi, int n) {
    double raw = (hi - lo) / (n > 0 ? n : 1);
    if (!(raw > 0)) return 1;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* Round a range out to whole steps; widen an empty one. */
static void nice_range(double *lo, double *hi, int n, double *step) {
    if (*hi - *lo <= 0) {
        double d = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1;
        *lo -= d;
        *hi += d;
    }
    *step = nice_step(*lo, *hi, n);
    *lo = floor(*lo / *step + 1e-9) * *step;
    *hi = ceil(*hi / *step - 1e-9) * *step;
}

/* ------------------------------------------------------------ line chart */

typedef struct frame {
    double L, T, W, H;   /* plot area */
    double x0, x1, y0, y1;
} frame;

static double fx(const frame *fr, double x) { return fr->L + (x - fr->x0) / (fr->x1 - fr->x0) * fr->W; }
static double fy(const frame *fr, double y) { return fr->T + fr->H - (y - fr->y0) / (fr->y1 - fr->y0) * fr->H; }

/* Emit one point of a polyline unless it repeats the last pixel column's
 * extremes: long series are reduced to min/max per pixel column. */
static void poly_points(FILE *f, const frame *fr, const svg_series *s) {
    int open = 0, pts = 0;
    double col = -1e9, cmin = 0, cmax = 0, lx = 0, ly = 0;
    for (int i = 0; i <= s->n; i++) {
        int end = i == s->n || !isfinite(s->y[i]) || !isfinite(s->x[i]);
        if (end) {
            if (open) fputs("\"/>\n", f);
            /* a lone point draws no line: a dot instead */
            if (open && pts == 1 && !s->markers)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", lx, ly, s->color);
            open = pts = 0;
            col = -1e9;
            continue;
        }
        double px = fx(fr, s->x[i]), py = fy(fr, s->y[i]);
        if (!open) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s points=\"", s->color,
                    s->dashed ? " stroke-dasharray=\"5,3\"" : "");
            open = 1;
        }
        int c = (int)floor(px);
        if (c == (int)col && i + 1 < s->n && isfinite(s->y[i + 1])) {
            /* same pixel column: only new extremes are drawn */
            if (py >= cmin && py <= cmax) continue;
            if (py < cmin) cmin = py;
            if (py > cmax) cmax = py;
        } else {
            col = c;
            cmin = cmax = py;
        }
        fprintf(f, "%.1f,%.1f ", px, py);
        lx = px;
        ly = py;
        pts++;
    }
}

/* Legend items flow in rows under the plot, each as wide as its text
 * (about 6.2 px a character). Returns the rows they take. */
static double legend_width(const char *label) { return 23 + strlen(label) * 6.2 + 16; }

static int legend_rows(const svg_series *s, int n, double width) {
    double at = 0;
    int r = 0, any = 0;
    for (int i = 0; i < n; i++) {
        if (!s[i].label) continue;
        double w = legend_width(s[i].label);
        if (any && at + w > width) {
            r++;
            at = 0;
        }
        at += w;
        any = 1;
    }
    return any ? r + 1 : 0;
}

void svg_line_chart(FILE *f, const svg_chart *c, const svg_series *s, int n_series) {
    int lrows = legend_rows(s, n_series, c->width - 80);
    /* c->height holds one legend row; more rows make the chart taller */
    int extra = lrows > 1 ? (lrows - 1) * 18 : 0, height = c->height + extra;
    frame fr = {64, 10, c->width - 64 - 16, c->height - 10 - 42 - 18, 0, 0, 0, 0};
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) continue;
            xmin = fmin(xmin, s[k].x[i]);
            xmax = fmax(xmax, s[k].x[i]);
            ymin = fmin(ymin, s[k].y[i]);
            ymax = fmax(ymax, s[k].y[i]);
        }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" " FONT ">\n",
            c->width, height);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" stroke=\"#bbb\"/>\n",
            fr.L, fr.T, fr.W, fr.H);
    if (!(xmin <= xmax)) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n</svg>\n",
                fr.L + fr.W / 2, fr.T + fr.H / 2);
        return;
    }
    int nonneg = ymin >= 0;
    if (c->y_zero) {
        ymin = fmin(ymin, 0);
        ymax = fmax(ymax, 0);
    }
    if (ymax <= ymin && nonneg && ymin == 0) ymax = 1; /* all zero: 0..1, not -1..1 */
    double xs, ys;
    int ny = (int)(fr.H / 40) > 2 ? (int)(fr.H / 40) : 2;
    int nx = (int)(fr.W / 90) > 2 ? (int)(fr.W / 90) : 2;
    nice_range(&ymin, &ymax, ny, &ys);
    if (c->integer_y && ys < 1) {
        ys = 1;
        ymin = floor(ymin);
        ymax = ceil(ymax);
        if (ymax <= ymin) ymax = ymin + 1;
    }
    if (xmax <= xmin) {
        xmin -= 1;
        xmax += 1;
    }
    xs = nice_step(xmin, xmax, nx);
    /* whole-number x (steps): no ticks between them */
    int integral = 1;
    for (int k = 0; k < n_series && integral; k++)
        for (int i = 0; i < s[k].n && integral; i++)
            if (isfinite(s[k].x[i]) && s[k].x[i] != floor(s[k].x[i])) integral = 0;
    if (integral && xs < 1) xs = 1;
    fr.x0 = xmin;
    fr.x1 = xmax;
    fr.y0 = ymin;
    fr.y1 = ymax;
    char buf[32];
    /* y grid and labels */
    for (double y = ymin; y <= ymax + ys * 1e-6; y += ys) {
        double py = fy(&fr, y);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", fr.L, py,
                fr.L + fr.W, py);
        svg_fmt_num(buf, sizeof buf, fabs(y) < ys * 1e-6 ? 0 : y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#444\">%s</text>\n", fr.L - 5,
                py + 4, buf);
    }
    /* x grid and labels, only ticks inside the data range */
    for (double x = ceil(xmin / xs - 1e-9) * xs; x <= xmax + xs * 1e-6; x += xs) {
        double px = fx(&fr, x);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", px, fr.T, px,
                fr.T + fr.H);
        svg_fmt_num(buf, sizeof buf, fabs(x) < xs * 1e-6 ? 0 : x);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#444\">%s</text>\n", px,
                fr.T + fr.H + 15, buf);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n",
            fr.L, fr.T, fr.W, fr.H);
    if (c->xlabel) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#222\">", fr.L + fr.W / 2,
                fr.T + fr.H + 32);
        svg_escape(f, c->xlabel);
        fputs("</text>\n", f);
    }
    if (c->ylabel) {
        fprintf(f, "<text transform=\"translate(13,%.1f) rotate(-90)\" text-anchor=\"middle\" fill=\"#222\">",
                fr.T + fr.H / 2);
        svg_escape(f, c->ylabel);
        fputs("</text>\n", f);
    }
    /* the series, clipped to the plot area */
    int clip_id = c->id;
    fprintf(f, "<clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n",
            clip_id, fr.L - 4, fr.T - 4, fr.W + 8, fr.H + 8);
    fprintf(f, "<g clip-path=\"url(#clip%d)\">\n", clip_id);
    for (int k = 0; k < n_series; k++) {
        poly_points(f, &fr, &s[k]);
        if (!s[k].markers) continue;
        for (int i = 0; i < s[k].n; i++)
            if (isfinite(s[k].y[i]) && isfinite(s[k].x[i]))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", fx(&fr, s[k].x[i]),
                        fy(&fr, s[k].y[i]), s[k].color);
    }
    fputs("</g>\n", f);
    /* legend, flowing as legend_rows counts it */
    double at = 0;
    int row = 0, any = 0;
    for (int k = 0; k < n_series; k++) {
        if (!s[k].label) continue;
        double w = legend_width(s[k].label);
        if (any && at + w > c->width - 80) {
            row++;
            at = 0;
        }
        any = 1;
        double lx = fr.L + at, ly = fr.T + fr.H + 50 + row * 18;
        at += w;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"%s/>\n",
                lx, ly - 4, lx + 18, ly - 4, s[k].color, s[k].dashed ? " stroke-dasharray=\"5,3\"" : "");
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#222\">", lx + 23, ly);
        svg_escape(f, s[k].label);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
}

/* --------------------------------------------------------------- heatmap */

typedef struct rgb {
    double r, g, b;
} rgb;

static rgb lerp(rgb a, rgb b, double t) {
    return (rgb){a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

/* Piecewise-linear through stops at equal spacing, t in [0, 1]. */
static rgb ramp(const rgb *stop, int n, double t) {
    if (!(t > 0)) return stop[0];
    if (t >= 1) return stop[n - 1];
    double u = t * (n - 1);
    int i = (int)u;
    return lerp(stop[i], stop[i + 1], u - i);
}

static rgb heat_color(const svg_heatmap *h, double v) {
    static const rgb viridis[] = {{68, 1, 84},    {59, 82, 139},  {33, 145, 140},
                                  {94, 201, 98},  {253, 231, 37}};
    static const rgb blue_white_red[] = {{33, 102, 172}, {146, 197, 222}, {247, 247, 247},
                                         {244, 165, 130}, {178, 24, 43}};
    if (!isfinite(v)) return (rgb){210, 210, 210};
    if (h->map == SVG_MAP_DIVERGING) {
        double t = v <= h->vmid ? 0.5 * (v - h->vmin) / (h->vmid - h->vmin)
                                : 0.5 + 0.5 * (v - h->vmid) / (h->vmax - h->vmid);
        return ramp(blue_white_red, 5, t);
    }
    return ramp(viridis, 5, (v - h->vmin) / (h->vmax - h->vmin));
}

static void put_rgb(FILE *f, rgb c) { fprintf(f, "#%02x%02x%02x", (int)c.r, (int)c.g, (int)c.b); }

void svg_heatmap_draw(FILE *f, const svg_heatmap *h) {
    /* room for row labels: about 6.5 px a character */
    int maxlen = 1;
    for (int r = 0; r < h->rows; r++) {
        char tmp[16];
        int len = h->row_labels ? (int)strlen(h->row_labels[r]) : snprintf(tmp, sizeof tmp, "%d", r);
        if (len > maxlen) maxlen = len;
    }
    double left = 30 + fmin(22, maxlen) * 6.5 + (h->ylabel ? 16 : 0);
    double L = left, T = 8, W = h->width - left - 96, H = h->height - 8 - 44;
    double cw = W / h->cols, ch = H / h->rows;
    char buf[64];
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" " FONT ">\n",
            h->width, h->height);
    /* cells; a tooltip each when there are not too many */
    int tips = (long long)h->rows * h->cols <= 4000;
    fprintf(f, "<g shape-rendering=\"crispEdges\">\n");
    for (int r = 0; r < h->rows; r++)
        for (int c = 0; c < h->cols; c++) {
            double v = h->v[(size_t)r * h->cols + c];
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"", L + c * cw,
                    T + r * ch, cw + 0.3, ch + 0.3);
            put_rgb(f, heat_color(h, v));
            if (tips && isfinite(v) && h->tip) {
                fputs("\"><title>", f);
                h->tip(f, h->tip_user, r, c);
                fputs("</title></rect>\n", f);
            } else if (tips && isfinite(v)) {
                fputs("\"><title>", f);
                if (h->row_labels) svg_escape(f, h->row_labels[r]);
                else fprintf(f, "%d", r);
                fputs(" / ", f);
                if (h->col_labels) svg_escape(f, h->col_labels[c]);
                else fprintf(f, "%.6g", h->x0 + (c + 0.5) * (h->x1 - h->x0) / h->cols);
                fprintf(f, ": ");
                fprintf(f, h->cell_fmt ? h->cell_fmt : "%.3g", v * (h->cell_scale ? h->cell_scale : 1));
                fputs("</title></rect>\n", f);
            } else {
                fputs("\"/>\n", f);
            }
        }
    fputs("</g>\n", f);
    if (h->annotate && cw >= 30 && ch >= 14) {
        for (int r = 0; r < h->rows; r++)
            for (int c = 0; c < h->cols; c++) {
                double v = h->v[(size_t)r * h->cols + c];
                if (!isfinite(v)) continue;
                rgb col = heat_color(h, v);
                double lum = 0.299 * col.r + 0.587 * col.g + 0.114 * col.b;
                snprintf(buf, sizeof buf, h->cell_fmt ? h->cell_fmt : "%.2g",
                         v * (h->cell_scale ? h->cell_scale : 1));
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"%d\" fill=\"%s\">%s</text>\n",
                        L + (c + 0.5) * cw, T + (r + 0.5) * ch + 4, ch >= 18 ? 11 : 9,
                        lum > 140 ? "#000" : "#fff", buf);
            }
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n",
            L, T, W, H);
    /* row labels: every k-th so they are at least 11 px apart */
    int rstep = ch >= 11 ? 1 : (int)ceil(11 / ch);
    for (int r = 0; r < h->rows; r += rstep) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#444\">", L - 5, T + (r + 0.5) * ch + 4);
        if (h->row_labels) {
            char tmp[24];
            snprintf(tmp, sizeof tmp, "%.22s", h->row_labels[r]);
            svg_escape(f, tmp);
        } else {
            fprintf(f, "%d", r);
        }
        fputs("</text>\n", f);
    }
    /* x axis: labels per column, or numeric ticks */
    if (h->col_labels) {
        int cstep = cw >= 22 ? 1 : (int)ceil(22 / cw);
        for (int c = 0; c < h->cols; c += cstep) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#444\">", L + (c + 0.5) * cw,
                    T + H + 15);
            svg_escape(f, h->col_labels[c]);
            fputs("</text>\n", f);
        }
    } else {
        double xs = nice_step(h->x0, h->x1, (int)(W / 90) > 2 ? (int)(W / 90) : 2);
        for (double x = ceil(h->x0 / xs - 1e-9) * xs; x <= h->x1 + xs * 1e-6; x += xs) {
            double px = L + (x - h->x0) / (h->x1 - h->x0) * W;
            svg_fmt_num(buf, sizeof buf, x);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#666\"/>\n", px, T + H, px,
                    T + H + 4);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#444\">%s</text>\n", px,
                    T + H + 15, buf);
        }
    }
    if (h->xlabel) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#222\">", L + W / 2, T + H + 33);
        svg_escape(f, h->xlabel);
        fputs("</text>\n", f);
    }
    if (h->ylabel) {
        fprintf(f, "<text transform=\"translate(13,%.1f) rotate(-90)\" text-anchor=\"middle\" fill=\"#222\">",
                T + H / 2);
        svg_escape(f, h->ylabel);
        fputs("</text>\n", f);
    }
    /* color bar: 40 bands from vmax (top) to vmin, ticks at min, mid, max */
    double bx = L + W + 14, bw = 14;
    for (int i = 0; i < 40; i++) {
        double v = h->vmax - (h->vmax - h->vmin) * (i + 0.5) / 40;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"%.1f\" height=\"%.2f\" fill=\"", bx, T + i * H / 40, bw,
                H / 40 + 0.3);
        put_rgb(f, heat_color(h, v));
        fputs("\"/>\n", f);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n", bx,
            T, bw, H);
    double tick[3] = {h->vmin, h->map == SVG_MAP_DIVERGING ? h->vmid : NAN, h->vmax};
    for (int i = 0; i < 3; i++) {
        if (!isfinite(tick[i])) continue;
        double py = T + H - (tick[i] - h->vmin) / (h->vmax - h->vmin) * H;
        double tv = tick[i] * (h->cell_scale ? h->cell_scale : 1);
        if (h->cell_fmt) snprintf(buf, sizeof buf, h->cell_fmt, tv);
        else svg_fmt_num(buf, sizeof buf, tv);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#444\">%s%s</text>\n", bx + bw + 4, py + 4,
                i == 2 && h->map == SVG_MAP_DIVERGING ? "\xe2\x89\xa5" : "", buf);
    }
    /* the caption only where it fits beside the bar (else the page says it) */
    if (h->value_label && strlen(h->value_label) * 6.5 < H) {
        fprintf(f, "<text transform=\"translate(%.1f,%.1f) rotate(90)\" text-anchor=\"middle\" fill=\"#222\">",
                bx + bw + 46, T + H / 2);
        svg_escape(f, h->value_label);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
}
