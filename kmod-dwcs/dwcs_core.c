// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dwcs_core.c - the DWCS scheduling algorithm, a port of the Rust reference
 * model (qsock-core/src/model). See dwcs_core.h for how the work is split
 * between this file and its caller.
 *
 * Places where this code and the model must agree are marked MODEL. The
 * vector driver (test/vector_driver.c) checks them on every vector of
 * tests/vectors/. One deliberate difference, not visible in the kernel: the
 * model finds misses stream by stream in stream-id order, this code takes
 * streams from the DUE set in deadline order. Misses of different streams do
 * not interact (each touches only its own window, FIFO and frame), so the
 * results are the same; only the order of drop events within one dequeue
 * call may differ, and the driver sorts those by stream before comparing.
 */
#ifdef __KERNEL__
#include <linux/math64.h>
#include <linux/time64.h>
#define DWCS_DIV64(a, b)	div64_u64(a, b)
#else
#define DWCS_DIV64(a, b)	((a) / (b))
#define NSEC_PER_SEC		1000000000ULL
#endif

#include "dwcs_core.h"

#define DWCS_U64_MAX	(~(u64)0)
#define DWCS_U32_MAX	(~(u32)0)

/* MODEL: all time arithmetic saturates at 2^64 - 1 ns. */
static u64 dwcs_sat_add(u64 a, u64 b)
{
	return a > DWCS_U64_MAX - b ? DWCS_U64_MAX : a + b;
}

static u64 dwcs_sat_sub(u64 a, u64 b)
{
	return a > b ? a - b : 0;
}

static u64 dwcs_max(u64 a, u64 b)
{
	return a > b ? a : b;
}

static void dwcs_inc(u64 *v)
{
	if (*v != DWCS_U64_MAX)
		(*v)++;
}

static void dwcs_dec(u64 *v)
{
	if (*v)
		(*v)--;
}

int dwcs_window_valid(u32 oln, u32 old)
{
	if (old == 0)
		return oln == 0;
	return oln <= old;
}

void dwcs_sched_init(struct dwcs_sched *q, const struct dwcs_ops *ops,
		     u64 link_rate, u32 limit, u64 resolution)
{
	*q = (struct dwcs_sched){
		.ops = ops,
		.link_rate = link_rate,
		.limit = limit,
		.resolution = resolution,
	};
}

void dwcs_stream_init(struct dwcs_stream *s,
		      const struct dwcs_stream_config *cfg)
{
	*s = (struct dwcs_stream){
		.cfg = *cfg,
		.x = cfg->oln,
		.y = cfg->old,
	};
}

void dwcs_stream_reset(struct dwcs_stream *s)
{
	struct dwcs_stream_config cfg = s->cfg;
	struct dwcs_counters cnt = s->cnt;

	dwcs_stream_init(s, &cfg);
	s->cnt = cnt;
	s->cnt.backlog_packets = 0;
	s->cnt.backlog_bytes = 0;
}

void dwcs_sched_reset(struct dwcs_sched *q)
{
	q->has_epoch = false;
	q->epoch = 0;
	q->link_free_at = 0;
	q->queued = 0;
	q->be_qlen = 0;
	q->be.backlog_packets = 0;
	q->be.backlog_bytes = 0;
}

/* ---- counters ---------------------------------------------------------- */

static void dwcs_cnt_queued(struct dwcs_counters *c, u32 len)
{
	dwcs_inc(&c->backlog_packets);
	c->backlog_bytes = dwcs_sat_add(c->backlog_bytes, len);
}

static void dwcs_cnt_unqueued(struct dwcs_counters *c, u32 len)
{
	dwcs_dec(&c->backlog_packets);
	c->backlog_bytes = dwcs_sat_sub(c->backlog_bytes, len);
}

static void dwcs_cnt_sent(struct dwcs_counters *c, u32 len, u64 delay)
{
	dwcs_inc(&c->sent_packets);
	c->sent_bytes = dwcs_sat_add(c->sent_bytes, len);
	c->delay_sum = dwcs_sat_add(c->delay_sum, delay);
	c->delay_max = dwcs_max(c->delay_max, delay);
}

/* ---- window-constraint (MODEL: window.rs) ------------------------------ */

static void dwcs_window_reset(struct dwcs_stream *s)
{
	s->x = s->cfg.oln;
	s->y = s->cfg.old;
	s->tagged = false;
}

static void dwcs_window_sent_in_time(struct dwcs_stream *s)
{
	if (s->y > s->x) {
		s->y--;
	} else if (s->y == s->x && s->x > 0) {
		s->x--;
		s->y--;
	}
	/* A tagged stream is paid back by one in-time send. */
	if ((s->x == 0 && s->y == 0) || s->tagged)
		dwcs_window_reset(s);
}

/*
 * A miss; returns true if it was a window violation (x' was already 0).
 * MODEL: a 0/0 stream's miss is a violation although its window stays 0/0.
 */
static bool dwcs_window_missed(struct dwcs_stream *s)
{
	if (s->x > 0) {
		s->x--;
		if (s->y)
			s->y--;
		if (s->x == 0 && s->y == 0)
			dwcs_window_reset(s);
		return false;
	}
	if (s->cfg.old > 0) {
		/* dwcs.md's +1 for the paper's +epsilon */
		if (s->y != DWCS_U32_MAX)
			s->y++;
		s->tagged = true;
	}
	return true;
}

static bool dwcs_stream_miss(struct dwcs_stream *s)
{
	bool violation;

	dwcs_inc(&s->cnt.deadline_misses);
	violation = dwcs_window_missed(s);
	if (violation)
		dwcs_inc(&s->cnt.window_violations);
	return violation;
}

/* ---- ordering ---------------------------------------------------------- */

u64 dwcs_deadline_slot(const struct dwcs_sched *q, u64 deadline)
{
	if (!q->resolution || !q->has_epoch)
		return deadline;
	return DWCS_DIV64(dwcs_sat_sub(deadline, q->epoch), q->resolution);
}

static int dwcs_cmp_u64(u64 a, u64 b)
{
	return a < b ? -1 : a > b;
}

/*
 * MODEL: order::compare. The constraint x'/y' (y' == 0 counts as 0/1) is
 * compared by cross-multiplying two u32 values in u64, which is exact.
 */
int dwcs_key_cmp(const struct dwcs_key *a, const struct dwcs_key *b)
{
	u64 an = a->y ? a->x : 0, ad = a->y ? a->y : 1;
	u64 bn = b->y ? b->x : 0, bd = b->y ? b->y : 1;
	int c;

	c = dwcs_cmp_u64(a->slot, b->slot);
	if (c)
		return c;
	c = dwcs_cmp_u64(an * bd, bn * ad);
	if (c)
		return c;
	/* equal constraints: both zero or neither */
	if (an == 0)
		c = dwcs_cmp_u64(b->y, a->y);
	else
		c = dwcs_cmp_u64(a->x, b->x);
	if (c)
		return c;
	return dwcs_cmp_u64(a->seq, b->seq);
}

int dwcs_ready_cmp(const struct dwcs_stream *a, const struct dwcs_stream *b)
{
	return dwcs_key_cmp(&a->key, &b->key);
}

int dwcs_wait_cmp(const struct dwcs_stream *a, const struct dwcs_stream *b)
{
	int c = dwcs_cmp_u64(a->key_e, b->key_e);

	return c ? c : dwcs_cmp_u64(a->head_seq, b->head_seq);
}

int dwcs_due_cmp(const struct dwcs_stream *a, const struct dwcs_stream *b)
{
	int c = dwcs_cmp_u64(a->key_d, b->key_d);

	return c ? c : dwcs_cmp_u64(a->head_seq, b->head_seq);
}

/* ---- set membership ---------------------------------------------------- */

static bool dwcs_paced(const struct dwcs_stream *s)
{
	return !s->cfg.work_conserving && s->cfg.period;
}

/* MODEL: Stream::head_eligible. */
static bool dwcs_head_eligible(const struct dwcs_stream *s, u64 now)
{
	return s->qlen && (!dwcs_paced(s) || now >= s->e);
}

static void dwcs_set_add(struct dwcs_sched *q, struct dwcs_stream *s,
			 enum dwcs_set set)
{
	s->in_set[set] = true;
	q->ops->set_add(q, s, set);
}

static void dwcs_unlink(struct dwcs_sched *q, struct dwcs_stream *s)
{
	int set;

	for (set = 0; set < DWCS_SET_MAX; set++) {
		if (s->in_set[set]) {
			q->ops->set_del(q, s, set);
			s->in_set[set] = false;
		}
	}
}

/* Puts a stream whose state may have changed back into its sets. */
static void dwcs_link(struct dwcs_sched *q, struct dwcs_stream *s, u64 now)
{
	if (!s->qlen)
		return;
	if (dwcs_head_eligible(s, now)) {
		s->key = (struct dwcs_key){
			.slot = dwcs_deadline_slot(q, s->d),
			.x = s->x,
			.y = s->y,
			.seq = s->head_seq,
		};
		dwcs_set_add(q, s, DWCS_SET_READY);
	} else {
		s->key_e = s->e;
		dwcs_set_add(q, s, DWCS_SET_WAIT);
	}
	if (!s->head_missed) {
		s->key_d = s->d;
		dwcs_set_add(q, s, DWCS_SET_DUE);
	}
}

void dwcs_stream_rekey(struct dwcs_sched *q, struct dwcs_stream *s, u64 now)
{
	dwcs_unlink(q, s);
	dwcs_link(q, s, now);
}

void dwcs_stream_change(struct dwcs_sched *q, struct dwcs_stream *s,
			const struct dwcs_stream_config *cfg, u64 now)
{
	dwcs_unlink(q, s);
	s->cfg = *cfg;
	dwcs_window_reset(s);
	dwcs_link(q, s, now);
}

void dwcs_stream_remove(struct dwcs_sched *q, struct dwcs_stream *s)
{
	dwcs_unlink(q, s);
	q->queued = q->queued > s->qlen ? q->queued - s->qlen : 0;
	s->qlen = 0;
	s->cnt.backlog_packets = 0;
	s->cnt.backlog_bytes = 0;
}

/* ---- per-stream transitions (MODEL: stream.rs) ------------------------- */

bool dwcs_pkt_droppable(const struct dwcs_stream *s,
			const struct dwcs_pkt_meta *m)
{
	switch (m->drop) {
	case DWCS_DROP_NO:
		return false;
	case DWCS_DROP_YES:
		return true;
	default:
		return s ? s->cfg.droppable : true;
	}
}

/*
 * MODEL: Stream::assign_frame. A packet continues the previous accepted
 * packet's frame iff it has no start mark and carries an explicit deadline
 * equal to that packet's explicit deadline.
 */
static u32 dwcs_assign_frame(struct dwcs_stream *s,
			     const struct dwcs_pkt_meta *m)
{
	bool continues = s->has_last_frame && m->has_deadline &&
			 !m->frame_start && s->last_has_deadline &&
			 s->last_deadline == m->deadline;

	if (!continues) {
		s->frames_begun++;
		s->last_frame = s->frames_begun;
	}
	s->has_last_frame = true;
	s->last_has_deadline = m->has_deadline;
	s->last_deadline = m->deadline;
	return s->last_frame;
}

/*
 * MODEL: Stream::start_head. Sets d and e for the packet @m that has just
 * become head at @now. A head that follows its predecessor keeps the pacing
 * track (e_prev + T) even when it became head late.
 */
static void dwcs_start_head(struct dwcs_stream *s,
			    const struct dwcs_pkt_meta *m, u64 now,
			    bool into_empty)
{
	u64 period = s->cfg.period;
	u64 d_prev = s->started ? s->d : 0;

	if (!s->started)
		s->e = now;
	else if (into_empty)
		s->e = dwcs_max(dwcs_sat_add(s->e, period), now);
	else
		s->e = dwcs_sat_add(s->e, period);

	if (m->has_deadline)
		s->d = m->deadline;
	else if (into_empty)
		s->d = dwcs_sat_add(dwcs_max(d_prev, now), period);
	else
		s->d = dwcs_sat_add(d_prev, period);

	s->head_seq = m->seq;
	s->started = true;
	s->head_missed = false;
}

/* The head was taken out at @now: the next packet, if any, becomes head. */
static void dwcs_next_head(struct dwcs_sched *q, struct dwcs_stream *s,
			   u64 now)
{
	struct dwcs_pkt_meta m;

	if (!s->qlen)
		return;
	q->ops->head(q, s, &m);
	dwcs_start_head(s, &m, now, false);
}

/* Takes a packet out of the stream's backlog and the scheduler's. */
static void dwcs_unqueue(struct dwcs_sched *q, struct dwcs_stream *s, u32 len)
{
	s->qlen--;
	if (q->queued)
		q->queued--;
	dwcs_cnt_unqueued(&s->cnt, len);
}

bool dwcs_frame_member(struct dwcs_sched *q, struct dwcs_stream *s,
		       const struct dwcs_pkt_meta *m)
{
	if (!dwcs_pkt_droppable(s, m))
		return false;
	/* MODEL: every frame drop is a miss of its own */
	dwcs_stream_miss(s);
	dwcs_unqueue(q, s, m->len);
	dwcs_inc(&s->cnt.drops[DWCS_REASON_FRAME]);
	return true;
}

/*
 * MODEL: Stream::process_misses. Counts every head whose deadline has passed
 * as a miss; droppable heads go with the rest of their frame, a
 * non-droppable head stays to be sent late and is counted once.
 */
static void dwcs_process_misses(struct dwcs_sched *q, struct dwcs_stream *s,
				u64 now)
{
	struct dwcs_pkt_meta m;
	bool violation;
	int reason;

	while (s->qlen && !s->head_missed && s->d < now) {
		q->ops->head(q, s, &m);
		violation = dwcs_stream_miss(s);
		if (!dwcs_pkt_droppable(s, &m)) {
			s->head_missed = true;
			return;
		}
		reason = violation ? DWCS_REASON_WINDOW : DWCS_REASON_LATE;
		dwcs_unqueue(q, s, m.len);
		dwcs_inc(&s->cnt.drops[reason]);
		q->ops->take_head(q, s, reason);
		if (s->qlen)
			q->ops->drop_frame(q, s, m.frame);
		s->has_dropped_frame = true;
		s->dropped_frame = m.frame;
		dwcs_next_head(q, s, now);
	}
}

/* ---- enqueue / dequeue (MODEL: Scheduler) ------------------------------ */

enum dwcs_enq_result dwcs_core_enqueue(struct dwcs_sched *q, struct dwcs_stream *s,
				  struct dwcs_pkt_meta *m, u64 now)
{
	/*
	 * MODEL: the streams share the limit, and best effort has a limit of
	 * its own: a bulk transfer filling the best-effort FIFO must not take
	 * the room a stream's non-droppable packet needs.
	 */
	u32 held = s ? q->queued - q->be_qlen : q->be_qlen;
	bool full = held >= q->limit;
	bool droppable = dwcs_pkt_droppable(s, m);
	struct dwcs_counters *c = s ? &s->cnt : &q->be;

	if (!q->has_epoch) {
		/* half a slot before the first arrival */
		q->epoch = dwcs_sat_sub(now, q->resolution / 2);
		q->has_epoch = true;
	}
	m->enqueued_at = now;
	m->frame = 0;

	if (s) {
		/* Refused packets do not take part in framing: the retry will. */
		if (full && !droppable) {
			dwcs_inc(&c->refused);
			return DWCS_ENQ_REFUSE_FULL;
		}
		m->frame = dwcs_assign_frame(s, m);
		if (droppable && s->has_dropped_frame &&
		    s->dropped_frame == m->frame) {
			dwcs_stream_miss(s);
			dwcs_inc(&c->drops[DWCS_REASON_FRAME]);
			return DWCS_ENQ_DROP_FRAME;
		}
	}
	if (full) {
		/* MODEL: a queue-full drop is no miss and spares the frame. */
		if (!droppable) {
			dwcs_inc(&c->refused);
			return DWCS_ENQ_REFUSE_FULL;
		}
		dwcs_inc(&c->drops[DWCS_REASON_QUEUE_FULL]);
		return DWCS_ENQ_DROP_FULL;
	}

	m->seq = q->next_seq;
	q->next_seq = dwcs_sat_add(q->next_seq, 1);
	q->queued++;
	dwcs_cnt_queued(c, m->len);
	if (!s) {
		q->be_qlen++;
		return DWCS_ENQ_QUEUED;
	}
	s->qlen++;
	if (s->qlen == 1) {
		/* only the head's d, e and seq are keys: nothing else moves */
		dwcs_start_head(s, m, now, true);
		dwcs_link(q, s, now);
	}
	return DWCS_ENQ_QUEUED;
}

/* Moves every paced head that has become eligible from WAIT to READY. */
static void dwcs_promote(struct dwcs_sched *q, u64 now)
{
	struct dwcs_stream *s;

	while ((s = q->ops->set_first(q, DWCS_SET_WAIT)) && s->key_e <= now)
		dwcs_stream_rekey(q, s, now);
}

/*
 * MODEL: the link-rate step of Scheduler::dequeue. A dequeue that comes
 * late by less than the packet's own time on the wire (the watchdog's lag)
 * continues from where the previous packet ended, so timer lag does not
 * lower the rate; the burst this allows is at most one packet.
 */
static void dwcs_charge_link(struct dwcs_sched *q, u32 len, u64 now)
{
	u64 wire, start;

	if (!q->link_rate)
		return;
	/* len < 2^32 and 1e9 < 2^30: the product fits in u64 */
	wire = DWCS_DIV64((u64)len * NSEC_PER_SEC, q->link_rate);
	start = dwcs_sat_sub(now, q->link_free_at) <= wire ? q->link_free_at : now;
	q->link_free_at = dwcs_sat_add(start, wire);
}

static void dwcs_send_stream(struct dwcs_sched *q, struct dwcs_stream *s,
			     u64 now, struct dwcs_result *res)
{
	struct dwcs_pkt_meta m;
	bool late;

	dwcs_unlink(q, s);
	q->ops->head(q, s, &m);
	/* misses were counted before selection: an unmissed head is in time */
	late = s->head_missed || now > s->d;
	if (!late)
		dwcs_window_sent_in_time(s);
	else if (!s->head_missed)
		dwcs_stream_miss(s);
	*res = (struct dwcs_result){
		.stream = s,
		.deadline = s->d,
		.enqueued_at = m.enqueued_at,
		.len = m.len,
		.late = late,
	};
	dwcs_unqueue(q, s, m.len);
	dwcs_cnt_sent(&s->cnt, m.len, dwcs_sat_sub(now, m.enqueued_at));
	q->ops->take_head(q, s, -1);
	dwcs_next_head(q, s, now);
	dwcs_link(q, s, now);
}

enum dwcs_next dwcs_core_dequeue(struct dwcs_sched *q, u64 now,
			    struct dwcs_result *res)
{
	struct dwcs_pkt_meta m;
	struct dwcs_stream *s;

	/* 1: the link is still busy with the previous packet */
	if (q->link_rate && q->link_free_at > now) {
		res->at = q->link_free_at;
		return DWCS_NEXT_NOT_BEFORE;
	}

	/* 2: misses, O(log n) per stream that has any */
	while ((s = q->ops->set_first(q, DWCS_SET_DUE)) && s->key_d < now) {
		dwcs_unlink(q, s);
		dwcs_process_misses(q, s, now);
		dwcs_link(q, s, now);
	}

	/* 3: the first eligible head by precedence */
	dwcs_promote(q, now);
	s = q->ops->set_first(q, DWCS_SET_READY);
	if (s) {
		dwcs_send_stream(q, s, now, res);
		dwcs_charge_link(q, res->len, now);
		return DWCS_NEXT_SEND;
	}

	/* 4: best effort when no stream may send */
	if (q->be_qlen) {
		q->ops->be_head(q, &m);
		q->be_qlen--;
		if (q->queued)
			q->queued--;
		dwcs_cnt_unqueued(&q->be, m.len);
		dwcs_cnt_sent(&q->be, m.len, dwcs_sat_sub(now, m.enqueued_at));
		q->ops->be_take(q);
		*res = (struct dwcs_result){
			.enqueued_at = m.enqueued_at,
			.len = m.len,
		};
		dwcs_charge_link(q, m.len, now);
		return DWCS_NEXT_SEND;
	}

	/* 5: the earliest paced head, or nothing at all */
	s = q->ops->set_first(q, DWCS_SET_WAIT);
	if (s) {
		res->at = s->key_e;
		return DWCS_NEXT_NOT_BEFORE;
	}
	return DWCS_NEXT_IDLE;
}
