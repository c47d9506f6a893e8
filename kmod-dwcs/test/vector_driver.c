// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * vector_driver.c - replays tests/vectors/ *.vec through dwcs_core and
 * compares the results with the ones each vector lists.
 *
 * The format and the replay loop are those of tests/vectors/README.md (and
 * qsock-core/src/model/trace.rs, `run`). The containers are plain arrays;
 * the sets check on every use that no stream's cached sort key went stale
 * while it was in a set, which is what the qdisc's rbtrees rely on.
 *
 * Usage: vector_driver FILE.vec...   (prints a diff per failure and
 * "N passed, N failed"; exits 1 on any failure, 2 on a usage error)
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dwcs_core.h"

#define MAX_WORDS	32
#define CLASS_BE	(-1LL)

struct pkt {
	struct dwcs_pkt_meta m;
	u64 id;
};

struct fifo {
	struct pkt *v;
	size_t head, len, cap;	/* packets v[head .. head + len) */
};

struct stream {
	struct dwcs_stream s;	/* first: container_of by cast */
	u32 id;
	struct fifo q;
};

struct arrival {
	u64 time;
	long long class;	/* stream id or CLASS_BE */
	struct pkt p;
};

struct lines {
	char **v;
	size_t len, cap;
};

struct vec {
	u64 rate;
	u32 limit;
	u64 resolution;
	struct stream *streams;
	size_t nstreams;
	struct arrival *arr;
	size_t narr, carr;
	struct lines expected;
};

/* The replay's state, reached from the ops through the dwcs_sched. */
struct driver {
	struct dwcs_sched q;	/* first: container_of by cast */
	struct vec *vec;
	struct fifo be;
	struct stream *sets[DWCS_SET_MAX][1024];
	size_t nset[DWCS_SET_MAX];
	struct pkt sent;	/* taken by take_head(-1) or be_take */
	struct lines events;
	struct lines pending_drops;	/* of the current dequeue call */
	u64 now;
	int errors;
};

static const char *const reason_names[DWCS_REASON_MAX] = {
	"late", "window", "frame", "queue_full",
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		perror("realloc");
		exit(2);
	}
	return p;
}

static void lines_push(struct lines *l, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		perror("vasprintf");
		exit(2);
	}
	va_end(ap);
	if (l->len == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->len++] = s;
}

static void lines_free(struct lines *l)
{
	size_t i;

	for (i = 0; i < l->len; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct lines){ 0 };
}

/* A time in the largest unit that represents it exactly (trace.rs Time). */
static const char *fmt_time(u64 t, char *buf, size_t n)
{
	if (t == 0)
		snprintf(buf, n, "0");
	else if (t % 1000000000ULL == 0)
		snprintf(buf, n, "%llus", (unsigned long long)(t / 1000000000ULL));
	else if (t % 1000000ULL == 0)
		snprintf(buf, n, "%llums", (unsigned long long)(t / 1000000ULL));
	else if (t % 1000ULL == 0)
		snprintf(buf, n, "%lluus", (unsigned long long)(t / 1000ULL));
	else
		snprintf(buf, n, "%llu", (unsigned long long)t);
	return buf;
}

static const char *fmt_class(long long c, char *buf, size_t n)
{
	if (c == CLASS_BE)
		snprintf(buf, n, "be");
	else
		snprintf(buf, n, "%lld", c);
	return buf;
}

/* ---- FIFOs ------------------------------------------------------------- */

static void fifo_push(struct fifo *f, const struct pkt *p)
{
	if (f->head + f->len == f->cap) {
		if (f->head) {
			memmove(f->v, f->v + f->head, f->len * sizeof(*f->v));
			f->head = 0;
		} else {
			f->cap = f->cap ? 2 * f->cap : 16;
			f->v = xrealloc(f->v, f->cap * sizeof(*f->v));
		}
	}
	f->v[f->head + f->len++] = *p;
}

static struct pkt *fifo_at(struct fifo *f, size_t i)
{
	return &f->v[f->head + i];
}

static void fifo_remove(struct fifo *f, size_t i)
{
	if (i == 0) {
		f->head++;
	} else {
		memmove(fifo_at(f, i), fifo_at(f, i + 1),
			(f->len - i - 1) * sizeof(*f->v));
	}
	f->len--;
}

/* ---- ops --------------------------------------------------------------- */

static struct driver *drv(struct dwcs_sched *q)
{
	return (struct driver *)q;
}

static struct stream *strm(struct dwcs_stream *s)
{
	return (struct stream *)s;
}

static void check(struct driver *d, int ok, const char *what, u32 id)
{
	if (!ok) {
		fprintf(stderr, "  core invariant broken: %s (stream %u)\n",
			what, id);
		d->errors++;
	}
}

static void record_drop(struct driver *d, long long class, u64 id, int reason)
{
	char t[32], c[32];

	lines_push(&d->pending_drops, "drop %s %s id=%llu %s",
		   fmt_time(d->now, t, sizeof(t)),
		   fmt_class(class, c, sizeof(c)), (unsigned long long)id,
		   reason_names[reason]);
}

static void op_head(struct dwcs_sched *q, struct dwcs_stream *s,
		    struct dwcs_pkt_meta *m)
{
	struct stream *st = strm(s);

	check(drv(q), st->q.len == s->qlen && st->q.len > 0, "head of qlen",
	      st->id);
	*m = fifo_at(&st->q, 0)->m;
}

static void op_take_head(struct dwcs_sched *q, struct dwcs_stream *s,
			 int reason)
{
	struct driver *d = drv(q);
	struct stream *st = strm(s);
	struct pkt *p = fifo_at(&st->q, 0);

	if (reason < 0)
		d->sent = *p;
	else
		record_drop(d, st->id, p->id, reason);
	fifo_remove(&st->q, 0);
	check(d, st->q.len == s->qlen, "take_head qlen", st->id);
}

static void op_drop_frame(struct dwcs_sched *q, struct dwcs_stream *s,
			  u32 frame)
{
	struct driver *d = drv(q);
	struct stream *st = strm(s);
	size_t i = 0;

	while (i < st->q.len && fifo_at(&st->q, i)->m.frame == frame) {
		struct pkt *p = fifo_at(&st->q, i);

		if (dwcs_frame_member(q, s, &p->m)) {
			record_drop(d, st->id, p->id, DWCS_REASON_FRAME);
			fifo_remove(&st->q, i);
		} else {
			i++;
		}
	}
	/* the contiguity the kernel relies on: no member further back */
	for (; i < st->q.len; i++)
		check(d, fifo_at(&st->q, i)->m.frame != frame,
		      "frame members contiguous", st->id);
	check(d, st->q.len == s->qlen, "drop_frame qlen", st->id);
}

static void op_be_head(struct dwcs_sched *q, struct dwcs_pkt_meta *m)
{
	*m = fifo_at(&drv(q)->be, 0)->m;
}

static void op_be_take(struct dwcs_sched *q)
{
	struct driver *d = drv(q);

	d->sent = *fifo_at(&d->be, 0);
	fifo_remove(&d->be, 0);
}

static void op_set_add(struct dwcs_sched *q, struct dwcs_stream *s,
		       enum dwcs_set set)
{
	struct driver *d = drv(q);
	size_t i;

	for (i = 0; i < d->nset[set]; i++)
		check(d, &d->sets[set][i]->s != s, "set_add twice",
		      strm(s)->id);
	if (d->nset[set] == sizeof(d->sets[set]) / sizeof(d->sets[set][0])) {
		fprintf(stderr, "more than %zu streams\n", d->nset[set]);
		exit(2);
	}
	d->sets[set][d->nset[set]++] = strm(s);
}

static void op_set_del(struct dwcs_sched *q, struct dwcs_stream *s,
		       enum dwcs_set set)
{
	struct driver *d = drv(q);
	size_t i;

	for (i = 0; i < d->nset[set]; i++) {
		if (&d->sets[set][i]->s == s) {
			d->sets[set][i] = d->sets[set][--d->nset[set]];
			return;
		}
	}
	check(d, 0, "set_del of a stream not in the set", strm(s)->id);
}

/* Whether the cached key still is what the stream's state says. */
static int key_fresh(struct driver *d, struct stream *st, enum dwcs_set set)
{
	const struct dwcs_stream *s = &st->s;

	switch (set) {
	case DWCS_SET_READY:
		return s->key.slot == dwcs_deadline_slot(&d->q, s->d) &&
		       s->key.x == s->x && s->key.y == s->y &&
		       s->key.seq == s->head_seq && s->qlen;
	case DWCS_SET_WAIT:
		return s->key_e == s->e && s->qlen;
	default:
		return s->key_d == s->d && s->qlen && !s->head_missed;
	}
}

static struct dwcs_stream *op_set_first(struct dwcs_sched *q,
					enum dwcs_set set)
{
	static int (*const cmp[DWCS_SET_MAX])(const struct dwcs_stream *,
					      const struct dwcs_stream *) = {
		dwcs_ready_cmp, dwcs_wait_cmp, dwcs_due_cmp,
	};
	struct driver *d = drv(q);
	struct stream *best = NULL;
	size_t i;

	for (i = 0; i < d->nset[set]; i++) {
		struct stream *st = d->sets[set][i];

		check(d, key_fresh(d, st, set), "stale key in a set", st->id);
		if (!best || cmp[set](&st->s, &best->s) < 0)
			best = st;
	}
	return best ? &best->s : NULL;
}

static const struct dwcs_ops driver_ops = {
	.head = op_head,
	.take_head = op_take_head,
	.drop_frame = op_drop_frame,
	.be_head = op_be_head,
	.be_take = op_be_take,
	.set_add = op_set_add,
	.set_del = op_set_del,
	.set_first = op_set_first,
};

/* ---- parser ------------------------------------------------------------ */

struct words {
	char *w[MAX_WORDS];
	int n;
};

static int parse_u64(const char *s, u64 *out)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static int parse_u32(const char *s, u32 *out)
{
	u64 v;

	if (parse_u64(s, &v) || v > 0xffffffffULL)
		return -1;
	*out = (u32)v;
	return 0;
}

static int parse_time(const char *s, u64 *out)
{
	static const struct { const char *unit; u64 scale; } units[] = {
		{ "", 1 }, { "ns", 1 }, { "us", 1000 }, { "ms", 1000000 },
		{ "s", 1000000000ULL },
	};
	char *end;
	size_t i;
	u64 v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit))
			continue;
		if (v > ~0ULL / units[i].scale)
			return -1;
		*out = v * units[i].scale;
		return 0;
	}
	return -1;
}

static int parse_class(const char *s, long long *out)
{
	u32 v;

	if (!strcmp(s, "be")) {
		*out = CLASS_BE;
		return 0;
	}
	if (parse_u32(s, &v))
		return -1;
	*out = v;
	return 0;
}

/* Takes key=value from w[from..]; NULL if absent. */
static const char *take(struct words *w, int from, const char *key)
{
	size_t k = strlen(key);
	int i;

	for (i = from; i < w->n; i++) {
		if (w->w[i] && !strncmp(w->w[i], key, k) && w->w[i][k] == '=') {
			const char *v = w->w[i] + k + 1;

			w->w[i] = NULL;
			return v;
		}
	}
	return NULL;
}

static int flag(struct words *w, int from, const char *word)
{
	int i;

	for (i = from; i < w->n; i++) {
		if (w->w[i] && !strcmp(w->w[i], word)) {
			w->w[i] = NULL;
			return 1;
		}
	}
	return 0;
}

/* The first word left from w[from..], taken; NULL if none. */
static const char *take_any(struct words *w, int from)
{
	int i;

	for (i = from; i < w->n; i++) {
		if (w->w[i]) {
			const char *v = w->w[i];

			w->w[i] = NULL;
			return v;
		}
	}
	return NULL;
}

static int yes_no(const char *s, bool *out)
{
	if (!strcmp(s, "yes"))
		*out = true;
	else if (!strcmp(s, "no"))
		*out = false;
	else
		return -1;
	return 0;
}

static int reason_index(const char *s, const char *const *names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static const char *const refuse_names[] = { "queue_full", "unknown_stream" };

static int parse_statement(struct vec *v, struct words *w, char *err,
			   size_t errlen)
{
	const char *kw = w->w[0], *val;
	char t[32], c[32];
	int from = 2;

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)
	if (w->n < 2)
		FAIL("missing value after %s", kw);
	if ((!strcmp(kw, "rate") || !strcmp(kw, "limit") ||
	     !strcmp(kw, "resolution") || !strcmp(kw, "stream")) && v->narr)
		FAIL("%s must come before the first arrive", kw);

	if (!strcmp(kw, "rate")) {
		if (strcmp(w->w[1], "none") && parse_u64(w->w[1], &v->rate))
			FAIL("bad rate");
		if (!strcmp(w->w[1], "none"))
			v->rate = 0;
	} else if (!strcmp(kw, "limit")) {
		if (parse_u32(w->w[1], &v->limit))
			FAIL("bad limit");
	} else if (!strcmp(kw, "resolution")) {
		if (parse_time(w->w[1], &v->resolution))
			FAIL("bad resolution");
	} else if (!strcmp(kw, "stream")) {
		struct dwcs_stream_config cfg = { .droppable = true };
		struct stream *st;
		u32 id;
		size_t i;

		if (parse_u32(w->w[1], &id))
			FAIL("bad stream id");
		for (i = 0; i < v->nstreams; i++)
			if (v->streams[i].id == id)
				FAIL("stream %u defined twice", id);
		if ((val = take(w, 2, "period")) && parse_time(val, &cfg.period))
			FAIL("bad period");
		if ((val = take(w, 2, "oln")) && parse_u32(val, &cfg.oln))
			FAIL("bad oln");
		if ((val = take(w, 2, "old")) && parse_u32(val, &cfg.old))
			FAIL("bad old");
		if ((val = take(w, 2, "droppable")) && yes_no(val, &cfg.droppable))
			FAIL("bad droppable");
		if ((val = take(w, 2, "wc")) && yes_no(val, &cfg.work_conserving))
			FAIL("bad wc");
		if (!dwcs_window_valid(cfg.oln, cfg.old))
			FAIL("invalid window %u/%u", cfg.oln, cfg.old);
		v->streams = xrealloc(v->streams,
				      (v->nstreams + 1) * sizeof(*v->streams));
		st = &v->streams[v->nstreams++];
		memset(st, 0, sizeof(*st));
		st->id = id;
		dwcs_stream_init(&st->s, &cfg);
	} else if (!strcmp(kw, "arrive")) {
		struct arrival a = { 0 };

		from = 3;
		if (w->n < 3 || parse_time(w->w[1], &a.time) ||
		    parse_class(w->w[2], &a.class))
			FAIL("bad time or class");
		if (v->narr && v->arr[v->narr - 1].time > a.time)
			FAIL("arrivals must be in time order");
		if (!(val = take(w, 3, "id")) || parse_u64(val, &a.p.id))
			FAIL("missing or bad id=");
		if (!(val = take(w, 3, "len")) || parse_u32(val, &a.p.m.len))
			FAIL("missing or bad len=");
		if ((val = take(w, 3, "deadline"))) {
			if (parse_time(val, &a.p.m.deadline))
				FAIL("bad deadline");
			a.p.m.has_deadline = true;
		}
		val = take(w, 3, "drop");
		if (!val || !strcmp(val, "default"))
			a.p.m.drop = DWCS_DROP_DEFAULT;
		else if (!strcmp(val, "yes"))
			a.p.m.drop = DWCS_DROP_YES;
		else if (!strcmp(val, "no"))
			a.p.m.drop = DWCS_DROP_NO;
		else
			FAIL("bad drop");
		a.p.m.frame_start = flag(w, 3, "start");
		if (v->narr == v->carr) {
			v->carr = v->carr ? 2 * v->carr : 64;
			v->arr = xrealloc(v->arr, v->carr * sizeof(*v->arr));
		}
		v->arr[v->narr++] = a;
	} else if (!strcmp(kw, "send") || !strcmp(kw, "drop") ||
		   !strcmp(kw, "refuse")) {
		long long class;
		u64 time, id;
		int r;

		from = 3;
		if (w->n < 3 || parse_time(w->w[1], &time) ||
		    parse_class(w->w[2], &class))
			FAIL("bad time or class");
		if (!(val = take(w, 3, "id")) || parse_u64(val, &id))
			FAIL("missing or bad id=");
		fmt_time(time, t, sizeof(t));
		fmt_class(class, c, sizeof(c));
		if (!strcmp(kw, "send")) {
			lines_push(&v->expected, "send %s %s id=%llu%s", t, c,
				   (unsigned long long)id,
				   flag(w, 3, "late") ? " late" : "");
		} else if (!strcmp(kw, "drop")) {
			val = take_any(w, 3);
			r = val ? reason_index(val, reason_names,
					       DWCS_REASON_MAX) : -1;
			if (r < 0)
				FAIL("bad drop reason");
			lines_push(&v->expected, "drop %s %s id=%llu %s", t, c,
				   (unsigned long long)id, reason_names[r]);
		} else {
			val = take_any(w, 3);
			r = val ? reason_index(val, refuse_names, 2) : -1;
			if (r < 0)
				FAIL("bad refusal reason");
			lines_push(&v->expected, "refuse %s %s id=%llu %s", t,
				   c, (unsigned long long)id, refuse_names[r]);
		}
	} else if (!strcmp(kw, "window")) {
		u32 id, x, y;

		if (parse_u32(w->w[1], &id))
			FAIL("bad stream id");
		if (!(val = take(w, 2, "x")) || parse_u32(val, &x))
			FAIL("missing or bad x=");
		if (!(val = take(w, 2, "y")) || parse_u32(val, &y))
			FAIL("missing or bad y=");
		lines_push(&v->expected, "window %u x=%u y=%u", id, x, y);
	} else {
		FAIL("unknown statement %s", kw);
	}
	if ((val = take_any(w, from)))
		FAIL("unexpected \"%s\"", val);
	return 0;
#undef FAIL
}

static int parse_file(const char *path, struct vec *v)
{
	char *line = NULL, err[160];
	size_t cap = 0;
	int lineno = 0, rc = 0;
	FILE *f;

	*v = (struct vec){ .limit = 1000 };
	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) >= 0) {
		struct words w = { .n = 0 };
		char *hash = strchr(line, '#'), *tok, *save;

		lineno++;
		if (hash)
			*hash = '\0';
		for (tok = strtok_r(line, " \t\r\n", &save); tok;
		     tok = strtok_r(NULL, " \t\r\n", &save)) {
			if (w.n == MAX_WORDS) {
				fprintf(stderr, "%s:%d: too many words\n",
					path, lineno);
				rc = -1;
				goto out;
			}
			w.w[w.n++] = tok;
		}
		if (!w.n)
			continue;
		if (parse_statement(v, &w, err, sizeof(err))) {
			fprintf(stderr, "%s:%d: %s\n", path, lineno, err);
			rc = -1;
			goto out;
		}
	}
out:
	free(line);
	fclose(f);
	return rc;
}

/* ---- replay (README.md "Replay loop") ---------------------------------- */

static struct stream *find_stream(struct vec *v, long long id)
{
	size_t i;

	for (i = 0; i < v->nstreams; i++)
		if (v->streams[i].id == id)
			return &v->streams[i];
	return NULL;
}

static long long drop_class(const char *line)
{
	/* "drop TIME CLASS ..." */
	const char *p = strchr(line, ' ');

	p = p ? strchr(p + 1, ' ') : NULL;
	if (!p || !strncmp(p + 1, "be", 2))
		return CLASS_BE;
	return strtoll(p + 1, NULL, 10);
}

/*
 * The core finds misses in deadline order, the model in stream order: the
 * drops of one call are put in stream order (stable) before they are
 * recorded. See dwcs_core.c.
 */
static void flush_drops(struct driver *d)
{
	struct lines *l = &d->pending_drops;
	size_t i, j;

	for (i = 1; i < l->len; i++) {
		char *x = l->v[i];
		long long cx = drop_class(x);

		for (j = i; j > 0 && drop_class(l->v[j - 1]) > cx; j--)
			l->v[j] = l->v[j - 1];
		l->v[j] = x;
	}
	for (i = 0; i < l->len; i++)
		lines_push(&d->events, "%s", l->v[i]);
	lines_free(l);
}

static void enqueue_one(struct driver *d, const struct arrival *a)
{
	struct stream *st = NULL;
	struct pkt p = a->p;
	char t[32], c[32];

	fmt_time(d->now, t, sizeof(t));
	fmt_class(a->class, c, sizeof(c));
	if (a->class != CLASS_BE) {
		st = find_stream(d->vec, a->class);
		if (!st) {
			lines_push(&d->events, "refuse %s %s id=%llu unknown_stream",
				   t, c, (unsigned long long)p.id);
			return;
		}
	}
	if (!st) {
		/* MODEL: best effort ignores deadlines and frame marks */
		p.m.has_deadline = false;
		p.m.frame_start = false;
	}
	switch (dwcs_core_enqueue(&d->q, st ? &st->s : NULL, &p.m, d->now)) {
	case DWCS_ENQ_QUEUED:
		fifo_push(st ? &st->q : &d->be, &p);
		break;
	case DWCS_ENQ_DROP_FRAME:
		record_drop(d, a->class, p.id, DWCS_REASON_FRAME);
		break;
	case DWCS_ENQ_DROP_FULL:
		record_drop(d, a->class, p.id, DWCS_REASON_QUEUE_FULL);
		break;
	case DWCS_ENQ_REFUSE_FULL:
		lines_push(&d->events, "refuse %s %s id=%llu queue_full", t, c,
			   (unsigned long long)p.id);
		break;
	}
	flush_drops(d);
}

static int cmp_stream_id(const void *a, const void *b)
{
	const struct stream *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int replay(struct vec *v, struct driver *d)
{
	size_t next = 0, i;
	char t[32];

	memset(d, 0, sizeof(*d));
	d->vec = v;
	dwcs_sched_init(&d->q, &driver_ops, v->rate, v->limit, v->resolution);
	if (!v->narr)
		goto windows;
	d->now = v->arr[0].time;
	for (;;) {
		enum dwcs_next r;
		struct dwcs_result res;
		bool have_wake = false, have_next;
		u64 wake = 0, then;

		while (next < v->narr && v->arr[next].time <= d->now)
			enqueue_one(d, &v->arr[next++]);
		do {
			char c[32];

			r = dwcs_core_dequeue(&d->q, d->now, &res);
			flush_drops(d);
			if (r == DWCS_NEXT_SEND) {
				long long class = res.stream ?
					(long long)strm(res.stream)->id : CLASS_BE;

				lines_push(&d->events, "send %s %s id=%llu%s",
					   fmt_time(d->now, t, sizeof(t)),
					   fmt_class(class, c, sizeof(c)),
					   (unsigned long long)d->sent.id,
					   res.late ? " late" : "");
			} else if (r == DWCS_NEXT_NOT_BEFORE) {
				have_wake = true;
				wake = res.at;
			}
		} while (r == DWCS_NEXT_SEND);
		have_next = next < v->narr;
		if (have_wake && have_next)
			then = wake < v->arr[next].time ? wake : v->arr[next].time;
		else if (have_wake)
			then = wake;
		else if (have_next)
			then = v->arr[next].time;
		else
			break;
		if (then <= d->now) {
			fprintf(stderr, "  the scheduler asked for %llu at %llu\n",
				(unsigned long long)then,
				(unsigned long long)d->now);
			return -1;
		}
		d->now = then;
	}
windows:
	/* a vector of best effort alone has no streams, and no array to sort */
	if (v->nstreams)
		qsort(v->streams, v->nstreams, sizeof(*v->streams), cmp_stream_id);
	for (i = 0; i < v->nstreams; i++)
		lines_push(&d->events, "window %u x=%u y=%u", v->streams[i].id,
			   v->streams[i].s.x, v->streams[i].s.y);
	return 0;
}

static void print_diff(const struct lines *e, const struct lines *a)
{
	size_t n = e->len > a->len ? e->len : a->len, i, width = 8;

	for (i = 0; i < e->len; i++)
		if (strlen(e->v[i]) > width)
			width = strlen(e->v[i]);
	for (i = 0; i < n; i++) {
		const char *x = i < e->len ? e->v[i] : NULL;
		const char *y = i < a->len ? a->v[i] : NULL;

		if (!x || !y || strcmp(x, y)) {
			printf("  first difference at result line %zu: expected `%s`, got `%s`\n",
			       i + 1, x ? x : "(nothing)", y ? y : "(nothing)");
			break;
		}
	}
	printf("    %-*s | actual\n", (int)width, "expected");
	for (i = 0; i < n; i++) {
		const char *x = i < e->len ? e->v[i] : "";
		const char *y = i < a->len ? a->v[i] : "";

		printf("  %c %-*s | %s\n", strcmp(x, y) ? '!' : ' ',
		       (int)width, x, y);
	}
}

static void free_vec(struct vec *v)
{
	size_t i;

	for (i = 0; i < v->nstreams; i++)
		free(v->streams[i].q.v);
	free(v->streams);
	free(v->arr);
	lines_free(&v->expected);
}

int main(int argc, char **argv)
{
	static struct driver d;
	int passed = 0, failed = 0, i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE.vec...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++) {
		struct vec v;
		bool ok;
		size_t j;

		if (parse_file(argv[i], &v)) {
			printf("FAIL %s (does not parse)\n", argv[i]);
			failed++;
			free_vec(&v);
			continue;
		}
		ok = replay(&v, &d) == 0;
		ok = ok && !d.errors && d.events.len == v.expected.len;
		for (j = 0; ok && j < v.expected.len; j++)
			ok = !strcmp(v.expected.v[j], d.events.v[j]);
		if (ok) {
			printf("ok   %s\n", argv[i]);
			passed++;
		} else {
			printf("FAIL %s%s\n", argv[i],
			       d.errors ? " (core invariants broken, see stderr)" : "");
			print_diff(&v.expected, &d.events);
			failed++;
		}
		lines_free(&d.events);
		lines_free(&d.pending_drops);
		free(d.be.v);
		free_vec(&v);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
