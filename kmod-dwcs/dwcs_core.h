/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * dwcs_core.h - the DWCS scheduling algorithm without kernel dependencies.
 *
 * The Rust reference model (qsock-core/src/model) is authoritative: this
 * file and dwcs_core.c are a port of it, and kmod-dwcs/test/vector_driver.c
 * replays tests/vectors/ through this code to prove that they agree. Every
 * "must agree with the model" point is marked MODEL below and in the .c file.
 *
 * The core owns the algorithm and the per-stream state; the caller owns the
 * containers: each stream's packet FIFO, the best-effort FIFO, and three
 * ordered sets of streams (see enum dwcs_set). The qdisc keeps the sets in
 * rb_root_cached trees, so every transition costs O(log n) in the number of
 * streams; the user-space driver keeps them in arrays. The core reaches the
 * containers only through struct dwcs_ops.
 *
 * Nothing here sleeps, allocates or takes locks: the qdisc calls it under
 * the qdisc lock.
 */
#ifndef DWCS_CORE_H
#define DWCS_CORE_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdbool.h>
#include <stdint.h>
typedef uint64_t u64;
typedef uint32_t u32;
typedef uint8_t u8;
#endif

/* Per-packet drop flag, resolved against the stream's flag when it matters. */
enum dwcs_drop_flag {
	DWCS_DROP_DEFAULT,	/* the stream's flag (best effort: droppable) */
	DWCS_DROP_NO,		/* never dropped: sent late, refused when full */
	DWCS_DROP_YES,		/* droppable even in a lossless stream */
};

/* Why a packet was dropped; the order is the xstats order. */
enum dwcs_drop_reason {
	DWCS_REASON_LATE,	/* late while x' > 0 */
	DWCS_REASON_WINDOW,	/* late with x' == 0: breaks the constraint */
	DWCS_REASON_FRAME,	/* rest of a frame dropped for lateness */
	DWCS_REASON_QUEUE_FULL,	/* droppable, and the queue was full */
	DWCS_REASON_MAX,
};

/* What dwcs_core_enqueue() decided about a packet. */
enum dwcs_enq_result {
	DWCS_ENQ_QUEUED,	/* caller appends it to the stream's FIFO */
	DWCS_ENQ_DROP_FRAME,	/* caller frees it: its frame was dropped */
	DWCS_ENQ_DROP_FULL,	/* caller frees it: queue full, droppable */
	DWCS_ENQ_REFUSE_FULL,	/* caller hands it back: full, non-droppable */
};

/* What dwcs_core_dequeue() decided. */
enum dwcs_next {
	DWCS_NEXT_SEND,		/* the packet taken by take_head/be_take */
	DWCS_NEXT_NOT_BEFORE,	/* nothing may leave before res->at */
	DWCS_NEXT_IDLE,		/* nothing queued */
};

/*
 * The ordered sets of streams the caller keeps. A backlogged stream is in
 * exactly one of READY and WAIT, and in DUE while its head has not been
 * counted as a miss; a stream without packets is in none.
 *
 * READY: heads that may be sent now, ordered by dwcs_ready_cmp() (the
 *        precedence of dwcs.md); selection takes the first.
 * WAIT:  paced heads not yet eligible, ordered by dwcs_wait_cmp() (e);
 *        the first gives the watchdog time, and dequeue moves every head
 *        with e <= now to READY.
 * DUE:   heads not yet counted as missed, ordered by dwcs_due_cmp() (d);
 *        misses are the first entries with d < now, so each costs O(log n).
 *
 * A stream's sort keys are cached in it when the core adds it to a set and
 * change only while it is out of every set, so a tree never sees a key
 * change under it.
 */
enum dwcs_set {
	DWCS_SET_READY,
	DWCS_SET_WAIT,
	DWCS_SET_DUE,
	DWCS_SET_MAX,
};

/* What the core needs to know of a packet. */
struct dwcs_pkt_meta {
	u64 deadline;		/* its own deadline, if has_deadline */
	u64 enqueued_at;	/* set by dwcs_core_enqueue() */
	u64 seq;		/* global arrival order, set by dwcs_core_enqueue() */
	u32 len;		/* bytes, charged to the link rate */
	u32 frame;		/* the stream's frame number, set by dwcs_core_enqueue() */
	u8 drop;		/* enum dwcs_drop_flag */
	bool has_deadline;
	bool frame_start;
};

/* Counters of one stream or of best effort; all saturate. */
struct dwcs_counters {
	u64 sent_packets;
	u64 sent_bytes;
	u64 drops[DWCS_REASON_MAX];
	u64 refused;
	u64 deadline_misses;
	u64 window_violations;
	u64 delay_sum;
	u64 delay_max;
	u64 backlog_packets;
	u64 backlog_bytes;
};

/* How one stream is scheduled (the paper's qsocket parameters). */
struct dwcs_stream_config {
	u64 period;		/* T in ns; 0 = aperiodic */
	u32 oln;
	u32 old;
	bool droppable;
	bool work_conserving;
};

/* Precedence key of a stream's head, cached while it is in READY. */
struct dwcs_key {
	u64 slot;		/* deadline slot at the resolution */
	u32 x;
	u32 y;
	u64 seq;
};

struct dwcs_stream {
	struct dwcs_stream_config cfg;

	/* window-constraint */
	u32 x;
	u32 y;
	bool tagged;

	/* head timing; of the last head while the FIFO is empty */
	u64 d;
	u64 e;
	bool started;
	bool head_missed;
	u64 head_seq;
	u32 qlen;

	/* frames: u32 numbers, compared for equality only */
	bool has_last_frame;
	bool last_has_deadline;
	u32 last_frame;
	u64 last_deadline;
	u32 frames_begun;
	bool has_dropped_frame;
	u32 dropped_frame;

	/* set membership and the keys the sets are ordered by */
	bool in_set[DWCS_SET_MAX];
	struct dwcs_key key;	/* READY */
	u64 key_e;		/* WAIT */
	u64 key_d;		/* DUE */

	struct dwcs_counters cnt;
};

struct dwcs_sched;

/*
 * The caller's containers. The core calls head/take_head only on a stream
 * with qlen > 0 and be_head/be_take only when be_qlen > 0.
 */
struct dwcs_ops {
	/* Reads the head packet's metadata. */
	void (*head)(struct dwcs_sched *q, struct dwcs_stream *s,
		     struct dwcs_pkt_meta *m);
	/*
	 * Unlinks the head. reason < 0: it is being sent, the caller keeps
	 * it for the dwcs_core_dequeue() result; otherwise it is dropped for
	 * enum dwcs_drop_reason @reason and the caller frees it.
	 */
	void (*take_head)(struct dwcs_sched *q, struct dwcs_stream *s,
			  int reason);
	/*
	 * Walks the FIFO from its head while packets belong to @frame (the
	 * members of a frame are contiguous: a frame only continues from the
	 * previous accepted packet), and for each one calls
	 * dwcs_frame_member(); if that returns true the caller unlinks and
	 * frees it (reason DWCS_REASON_FRAME).
	 */
	void (*drop_frame)(struct dwcs_sched *q, struct dwcs_stream *s,
			   u32 frame);
	void (*be_head)(struct dwcs_sched *q, struct dwcs_pkt_meta *m);
	void (*be_take)(struct dwcs_sched *q);
	void (*set_add)(struct dwcs_sched *q, struct dwcs_stream *s,
			enum dwcs_set set);
	void (*set_del)(struct dwcs_sched *q, struct dwcs_stream *s,
			enum dwcs_set set);
	/* The first stream of @set by its compare function, or NULL. */
	struct dwcs_stream *(*set_first)(struct dwcs_sched *q,
					 enum dwcs_set set);
};

struct dwcs_sched {
	const struct dwcs_ops *ops;
	u64 link_rate;		/* bytes/s; 0 = no limit */
	u32 limit;		/* packets, the streams together; best effort too */
	u64 resolution;		/* ns; 0 = deadlines compared exactly */
	u64 epoch;
	bool has_epoch;
	u64 link_free_at;
	u64 next_seq;
	u32 queued;		/* packets, all classes together */
	u32 be_qlen;
	struct dwcs_counters be;
};

/* What dwcs_core_dequeue() sends or when to call again. */
struct dwcs_result {
	struct dwcs_stream *stream;	/* NULL: best effort */
	u64 at;				/* DWCS_NEXT_NOT_BEFORE */
	u64 deadline;			/* effective d of a stream packet */
	u64 enqueued_at;
	u32 len;
	bool late;
};

/* Validates a window: 0/0 is pure EDF; old == 0 < oln and oln > old are not. */
int dwcs_window_valid(u32 oln, u32 old);

void dwcs_sched_init(struct dwcs_sched *q, const struct dwcs_ops *ops,
		     u64 link_rate, u32 limit, u64 resolution);
void dwcs_stream_init(struct dwcs_stream *s,
		      const struct dwcs_stream_config *cfg);
/*
 * Forgets a stream's timing, window and frames but keeps its config and
 * counters (qdisc reset); call dwcs_stream_remove() first.
 */
void dwcs_stream_reset(struct dwcs_stream *s);
/* Forgets the backlog, the epoch and the link; keeps config and counters. */
void dwcs_sched_reset(struct dwcs_sched *q);
/* New config: x'/y' restart at oln/old, tag cleared; the head keeps d, e. */
void dwcs_stream_change(struct dwcs_sched *q, struct dwcs_stream *s,
			const struct dwcs_stream_config *cfg, u64 now);
/*
 * Re-sorts a stream in its sets; after changing q->resolution the caller
 * calls it for every stream, since every READY key's slot changes.
 */
void dwcs_stream_rekey(struct dwcs_sched *q, struct dwcs_stream *s, u64 now);
/*
 * The stream is going away: takes it out of every set and forgets its
 * backlog; the caller frees its packets.
 */
void dwcs_stream_remove(struct dwcs_sched *q, struct dwcs_stream *s);

/* The slot rule 1 compares (MODEL: Scheduler::deadline_slot). */
u64 dwcs_deadline_slot(const struct dwcs_sched *q, u64 deadline);
/* <0: a goes first. Total orders (ties end on the unique seq). */
int dwcs_key_cmp(const struct dwcs_key *a, const struct dwcs_key *b);
int dwcs_ready_cmp(const struct dwcs_stream *a, const struct dwcs_stream *b);
int dwcs_wait_cmp(const struct dwcs_stream *a, const struct dwcs_stream *b);
int dwcs_due_cmp(const struct dwcs_stream *a, const struct dwcs_stream *b);

/* Whether a packet may be dropped, against the stream's current flag. */
bool dwcs_pkt_droppable(const struct dwcs_stream *s,
			const struct dwcs_pkt_meta *m);

/*
 * Offers a packet at @now to stream @s (NULL: best effort). Fills m->seq,
 * m->frame and m->enqueued_at. On DWCS_ENQ_QUEUED the caller must append
 * the packet to the FIFO before the next core call.
 */
enum dwcs_enq_result dwcs_core_enqueue(struct dwcs_sched *q, struct dwcs_stream *s,
				  struct dwcs_pkt_meta *m, u64 now);

/* Decides what leaves at @now (MODEL: Scheduler::dequeue). */
enum dwcs_next dwcs_core_dequeue(struct dwcs_sched *q, u64 now,
			    struct dwcs_result *res);

/* For ops->drop_frame: counts the miss and the drop; true = drop it. */
bool dwcs_frame_member(struct dwcs_sched *q, struct dwcs_stream *s,
		       const struct dwcs_pkt_meta *m);

#endif /* DWCS_CORE_H */
