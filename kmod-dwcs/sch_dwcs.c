// SPDX-License-Identifier: GPL-2.0
/*
 * net/sched/sch_dwcs.c	Dynamic Window-Constrained Scheduling (DWCS).
 *
 * One class per stream (a qsock socket, classified by SO_PRIORITY equal to
 * the class handle), each with a request period, a window-constraint
 * oln/old and loss/pacing flags; everything else goes to one best-effort
 * FIFO served when no stream may send. The algorithm lives in dwcs_core.c,
 * shared with the user-space vector driver that proves it equal to the
 * Rust reference model (qsock-core/src/model); this file supplies the
 * containers (rbtrees of classes, skb lists), the clock, the watchdog and
 * the netlink interface. Per-packet metadata: see
 * include/uapi/linux/sch_dwcs.h.
 */

#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/rbtree.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/types.h>
#include <linux/version.h>
#include <linux/netdevice.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
#include <net/gso.h>
#endif
#include <net/netlink.h>
#include <net/pkt_sched.h>
#include <net/sch_generic.h>
#include <net/sock.h>
#include <uapi/linux/sch_dwcs.h>

/*
 * The core is compiled into this object rather than linked as a second one
 * so that the module keeps the name of this file (Kbuild cannot build
 * sch_dwcs.ko from sch_dwcs.o plus another object).
 */
#include "dwcs_core.c"

#define DWCS_MAX_CLASSES	65534U
#define DWCS_MAX_LIMIT		(1U << 20)
#define DWCS_DEFAULT_LIMIT	1000U

/* What a queued skb carries in its qdisc cb; the rest is in skb->tstamp. */
struct dwcs_skb_cb {
	u64 seq;
	u64 enqueued_at;
	u32 frame;
} __packed;

struct dwcs_class {
	struct Qdisc_class_common common;
	struct dwcs_stream stream;
	struct sk_buff_head queue;
	struct rb_node node[DWCS_SET_MAX];
	struct gnet_stats_basic_sync bstats;
	struct gnet_stats_queue qstats;
};

struct dwcs_sched_data {
	struct dwcs_sched core;
	struct Qdisc *sch;
	struct Qdisc_class_hash clhash;
	struct rb_root_cached sets[DWCS_SET_MAX];
	struct sk_buff_head be;
	struct qdisc_watchdog watchdog;
	struct sk_buff *sent;		/* taken by the core for dequeue */
	u32 dropped_packets;		/* by the current dequeue */
	u32 dropped_bytes;
	u32 nclasses;
};

static const struct nla_policy dwcs_policy[TCA_DWCS_MAX + 1] = {
	[TCA_DWCS_RATE]		= { .type = NLA_U64 },
	[TCA_DWCS_LIMIT]	= NLA_POLICY_MIN(NLA_U32, 1),
	[TCA_DWCS_RESOLUTION]	= { .type = NLA_U64 },
};

static const struct nla_policy dwcs_class_policy[TCA_DWCS_CLASS_MAX + 1] = {
	[TCA_DWCS_CLASS_PERIOD]	= { .type = NLA_U64 },
	[TCA_DWCS_CLASS_OLN]	= { .type = NLA_U32 },
	[TCA_DWCS_CLASS_OLD]	= { .type = NLA_U32 },
	[TCA_DWCS_CLASS_FLAGS]	= NLA_POLICY_MASK(NLA_U32, TC_DWCS_CLASS_F_MASK),
};

static struct dwcs_skb_cb *dwcs_skb_cb(struct sk_buff *skb)
{
	qdisc_cb_private_validate(skb, sizeof(struct dwcs_skb_cb));
	return (struct dwcs_skb_cb *)qdisc_skb_cb(skb)->data;
}

static struct dwcs_sched_data *dwcs_priv(struct dwcs_sched *core)
{
	return container_of(core, struct dwcs_sched_data, core);
}

static struct dwcs_class *dwcs_cl(struct dwcs_stream *s)
{
	return container_of(s, struct dwcs_class, stream);
}

/*
 * The SCM_TXTIME value, if this packet's sender speaks the uapi's encoding:
 * a local UDP (or other non-TCP) socket with SO_TXTIME on CLOCK_MONOTONIC.
 * TCP stamps skb->tstamp with its own departure times, which are no
 * deadlines, and forwarded packets have no socket.
 */
static u64 dwcs_txtime(const struct sk_buff *skb)
{
	const struct sock *sk = skb->sk;

	if (!sk || !sk_fullsock(sk) || sk->sk_protocol == IPPROTO_TCP ||
	    !sock_flag(sk, SOCK_TXTIME) || sk->sk_clockid != CLOCK_MONOTONIC)
		return 0;
	return ktime_to_ns(skb->tstamp);
}

/* Decodes the uapi's txtime encoding into what the core reads. */
static void dwcs_meta_from_skb(struct sk_buff *skb, struct dwcs_pkt_meta *m)
{
	u64 txtime = dwcs_txtime(skb);
	u64 drop = (txtime & TC_DWCS_TXTIME_DROP_MASK) >>
		   TC_DWCS_TXTIME_DROP_SHIFT;

	m->len = qdisc_pkt_len(skb);
	m->has_deadline = txtime >= TC_DWCS_TXTIME_NO_DEADLINE;
	m->deadline = txtime & ~TC_DWCS_TXTIME_FLAGS_MASK;
	/* the reserved value 3 reads as the default */
	m->drop = drop == TC_DWCS_DROP_NO ? DWCS_DROP_NO :
		  drop == TC_DWCS_DROP_YES ? DWCS_DROP_YES : DWCS_DROP_DEFAULT;
	m->frame_start = txtime & TC_DWCS_TXTIME_FRAME_START;
}

static void dwcs_meta_of_queued(struct sk_buff *skb, struct dwcs_pkt_meta *m)
{
	struct dwcs_skb_cb *cb = dwcs_skb_cb(skb);

	dwcs_meta_from_skb(skb, m);
	m->seq = cb->seq;
	m->enqueued_at = cb->enqueued_at;
	m->frame = cb->frame;
}

/* The packet leaves: nothing after us may read our metadata as a launch time. */
static void dwcs_clear_txtime(struct sk_buff *skb)
{
	skb_set_delivery_time(skb, 0, 0);
}

/* ---- containers for the core ------------------------------------------ */

static void dwcs_op_head(struct dwcs_sched *core, struct dwcs_stream *s,
			 struct dwcs_pkt_meta *m)
{
	dwcs_meta_of_queued(skb_peek(&dwcs_cl(s)->queue), m);
}

static void dwcs_account_drop(struct dwcs_sched_data *q,
			      struct dwcs_class *cl, struct sk_buff *skb)
{
	struct Qdisc *sch = q->sch;

	qdisc_qstats_backlog_dec(sch, skb);
	sch->q.qlen--;
	cl->qstats.backlog -= qdisc_pkt_len(skb);
	cl->qstats.drops++;
	qdisc_qstats_drop(sch);
	q->dropped_packets++;
	q->dropped_bytes += qdisc_pkt_len(skb);
	kfree_skb(skb);
}

static void dwcs_op_take_head(struct dwcs_sched *core, struct dwcs_stream *s,
			      int reason)
{
	struct dwcs_sched_data *q = dwcs_priv(core);
	struct dwcs_class *cl = dwcs_cl(s);
	struct sk_buff *skb = __skb_dequeue(&cl->queue);

	if (reason < 0)
		q->sent = skb;
	else
		dwcs_account_drop(q, cl, skb);
}

static void dwcs_op_drop_frame(struct dwcs_sched *core, struct dwcs_stream *s,
			       u32 frame)
{
	struct dwcs_sched_data *q = dwcs_priv(core);
	struct dwcs_class *cl = dwcs_cl(s);
	struct sk_buff *skb, *tmp;
	struct dwcs_pkt_meta m;

	/* a frame's members are contiguous from the head (dwcs_core.h) */
	skb_queue_walk_safe(&cl->queue, skb, tmp) {
		dwcs_meta_of_queued(skb, &m);
		if (m.frame != frame)
			break;
		if (dwcs_frame_member(core, s, &m)) {
			__skb_unlink(skb, &cl->queue);
			dwcs_account_drop(q, cl, skb);
		}
	}
}

static void dwcs_op_be_head(struct dwcs_sched *core, struct dwcs_pkt_meta *m)
{
	dwcs_meta_of_queued(skb_peek(&dwcs_priv(core)->be), m);
}

static void dwcs_op_be_take(struct dwcs_sched *core)
{
	struct dwcs_sched_data *q = dwcs_priv(core);

	q->sent = __skb_dequeue(&q->be);
}

typedef int (*dwcs_cmp_t)(const struct dwcs_stream *a,
			  const struct dwcs_stream *b);

static const dwcs_cmp_t dwcs_set_cmp[DWCS_SET_MAX] = {
	[DWCS_SET_READY]	= dwcs_ready_cmp,
	[DWCS_SET_WAIT]		= dwcs_wait_cmp,
	[DWCS_SET_DUE]		= dwcs_due_cmp,
};

static void dwcs_op_set_add(struct dwcs_sched *core, struct dwcs_stream *s,
			    enum dwcs_set set)
{
	struct rb_root_cached *root = &dwcs_priv(core)->sets[set];
	struct rb_node **p = &root->rb_root.rb_node, *parent = NULL;
	struct dwcs_class *cl = dwcs_cl(s);
	bool leftmost = true;

	while (*p) {
		struct dwcs_class *other;

		parent = *p;
		other = rb_entry(parent, struct dwcs_class, node[set]);
		if (dwcs_set_cmp[set](s, &other->stream) < 0) {
			p = &parent->rb_left;
		} else {
			p = &parent->rb_right;
			leftmost = false;
		}
	}
	rb_link_node(&cl->node[set], parent, p);
	rb_insert_color_cached(&cl->node[set], root, leftmost);
}

static void dwcs_op_set_del(struct dwcs_sched *core, struct dwcs_stream *s,
			    enum dwcs_set set)
{
	rb_erase_cached(&dwcs_cl(s)->node[set], &dwcs_priv(core)->sets[set]);
}

static struct dwcs_stream *dwcs_op_set_first(struct dwcs_sched *core,
					     enum dwcs_set set)
{
	struct rb_node *n = rb_first_cached(&dwcs_priv(core)->sets[set]);

	return n ? &rb_entry(n, struct dwcs_class, node[set])->stream : NULL;
}

static const struct dwcs_ops dwcs_core_ops = {
	.head		= dwcs_op_head,
	.take_head	= dwcs_op_take_head,
	.drop_frame	= dwcs_op_drop_frame,
	.be_head	= dwcs_op_be_head,
	.be_take	= dwcs_op_be_take,
	.set_add	= dwcs_op_set_add,
	.set_del	= dwcs_op_set_del,
	.set_first	= dwcs_op_set_first,
};

/* ---- data path -------------------------------------------------------- */

static struct dwcs_class *dwcs_find(struct Qdisc *sch, u32 classid)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct Qdisc_class_common *clc;

	clc = qdisc_class_find(&q->clhash, classid);
	return clc ? container_of(clc, struct dwcs_class, common) : NULL;
}

/* SO_PRIORITY naming one of our classes, as HTB and DRR match it. */
static struct dwcs_class *dwcs_classify(struct sk_buff *skb,
					struct Qdisc *sch)
{
	if (TC_H_MAJ(skb->priority ^ sch->handle))
		return NULL;
	return dwcs_find(sch, skb->priority);
}

static int dwcs_enqueue_one(struct sk_buff *skb, struct Qdisc *sch,
			    struct dwcs_class *cl, struct sk_buff **to_free)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct dwcs_skb_cb *cb;
	struct dwcs_pkt_meta m;

	dwcs_meta_from_skb(skb, &m);
	if (!cl) {
		/* best effort is one FIFO: no deadlines, no frames */
		m.has_deadline = false;
		m.frame_start = false;
	}

	switch (dwcs_core_enqueue(&q->core, cl ? &cl->stream : NULL, &m,
				  ktime_get_ns())) {
	case DWCS_ENQ_QUEUED:
		break;
	case DWCS_ENQ_REFUSE_FULL:
		/* non-droppable: the sender sees ENOBUFS (uapi header) */
		if (cl)
			cl->qstats.drops++;
		return qdisc_drop(skb, sch, to_free);
	default:
		/* droppable, accepted and dropped: the sender is not told */
		if (cl)
			cl->qstats.drops++;
		qdisc_drop(skb, sch, to_free);
		return NET_XMIT_CN;
	}

	cb = dwcs_skb_cb(skb);
	cb->seq = m.seq;
	cb->enqueued_at = m.enqueued_at;
	cb->frame = m.frame;
	if (cl) {
		__skb_queue_tail(&cl->queue, skb);
		cl->qstats.backlog += qdisc_pkt_len(skb);
	} else {
		__skb_queue_tail(&q->be, skb);
	}
	qdisc_qstats_backlog_inc(sch, skb);
	sch->q.qlen++;
	return NET_XMIT_SUCCESS;
}

/*
 * A GSO packet (TCP's, up to 64 KB) goes out as one: at a link rate of a
 * few Mbit/s it would hold the link, and every stream's next packet, for
 * over 100 ms, which no deadline of a live stream survives. So, with a link
 * rate set, best effort's GSO packets are cut into their segments here, as
 * tbf does with packets larger than its burst; a stream waits behind at
 * most one MTU-sized packet. Streams' own packets are not cut: a stream's
 * packet is what its period and window count.
 */
static int dwcs_enqueue_segments(struct sk_buff *skb, struct Qdisc *sch,
				 struct sk_buff **to_free)
{
	netdev_features_t features = netif_skb_features(skb);
	unsigned int len = 0, prev_len = qdisc_pkt_len(skb);
	struct sk_buff *segs, *nskb;
	int queued = 0;

	segs = skb_gso_segment(skb, features & ~NETIF_F_GSO_MASK);
	if (IS_ERR_OR_NULL(segs))
		return qdisc_drop(skb, sch, to_free);

	skb_list_walk_safe(segs, segs, nskb) {
		skb_mark_not_on_list(segs);
		qdisc_skb_cb(segs)->pkt_len = segs->len;
		len += segs->len;
		if (dwcs_enqueue_one(segs, sch, NULL, to_free) ==
		    NET_XMIT_SUCCESS)
			queued++;
	}
	/* our parents count the one packet they gave us: tell them the rest */
	if (queued > 1)
		qdisc_tree_reduce_backlog(sch, 1 - queued, prev_len - len);
	consume_skb(skb);
	return queued ? NET_XMIT_SUCCESS : NET_XMIT_DROP;
}

static int dwcs_enqueue(struct sk_buff *skb, struct Qdisc *sch,
			struct sk_buff **to_free)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct dwcs_class *cl = dwcs_classify(skb, sch);

	if (!cl && q->core.link_rate && skb_is_gso(skb))
		return dwcs_enqueue_segments(skb, sch, to_free);
	return dwcs_enqueue_one(skb, sch, cl, to_free);
}

static struct sk_buff *dwcs_dequeue(struct Qdisc *sch)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct dwcs_result res;
	struct sk_buff *skb;
	enum dwcs_next next;

	q->sent = NULL;
	q->dropped_packets = 0;
	q->dropped_bytes = 0;
	next = dwcs_core_dequeue(&q->core, ktime_get_ns(), &res);
	if (q->dropped_packets)
		qdisc_tree_reduce_backlog(sch, q->dropped_packets,
					  q->dropped_bytes);

	if (next == DWCS_NEXT_NOT_BEFORE)
		qdisc_watchdog_schedule_ns(&q->watchdog, res.at);
	if (next != DWCS_NEXT_SEND)
		return NULL;

	skb = q->sent;
	q->sent = NULL;
	if (res.stream) {
		struct dwcs_class *cl = dwcs_cl(res.stream);

		cl->qstats.backlog -= qdisc_pkt_len(skb);
		bstats_update(&cl->bstats, skb);
	}
	qdisc_qstats_backlog_dec(sch, skb);
	qdisc_bstats_update(sch, skb);
	sch->q.qlen--;
	dwcs_clear_txtime(skb);
	return skb;
}

/* ---- control path ----------------------------------------------------- */

static void dwcs_purge_class(struct Qdisc *sch, struct dwcs_class *cl)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	unsigned int len = cl->qstats.backlog;
	unsigned int qlen = skb_queue_len(&cl->queue);

	dwcs_stream_remove(&q->core, &cl->stream);
	sch->q.qlen -= qlen;
	sch->qstats.backlog -= len;
	cl->qstats.backlog = 0;
	qdisc_tree_reduce_backlog(sch, qlen, len);
	__skb_queue_purge(&cl->queue);
}

static int dwcs_parse_opts(struct nlattr *opt, struct nlattr **tb,
			   struct netlink_ext_ack *extack)
{
	int err;

	err = nla_parse_nested(tb, TCA_DWCS_MAX, opt, dwcs_policy, extack);
	if (err < 0)
		return err;
	if (tb[TCA_DWCS_LIMIT] &&
	    nla_get_u32(tb[TCA_DWCS_LIMIT]) > DWCS_MAX_LIMIT) {
		NL_SET_ERR_MSG_ATTR(extack, tb[TCA_DWCS_LIMIT],
				    "packet limit above 1048576: memory must stay bounded");
		return -EINVAL;
	}
	if (tb[TCA_DWCS_RESOLUTION] &&
	    nla_get_u64(tb[TCA_DWCS_RESOLUTION]) > NSEC_PER_SEC) {
		NL_SET_ERR_MSG_ATTR(extack, tb[TCA_DWCS_RESOLUTION],
				    "deadline resolution above 1 s: use a value finer than the shortest period");
		return -EINVAL;
	}
	return 0;
}

static int dwcs_change(struct Qdisc *sch, struct nlattr *opt,
		       struct netlink_ext_ack *extack)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct nlattr *tb[TCA_DWCS_MAX + 1];
	struct dwcs_class *cl;
	unsigned int i;
	int err;

	if (!opt) {
		NL_SET_ERR_MSG(extack, "dwcs: no options to change");
		return -EINVAL;
	}
	err = dwcs_parse_opts(opt, tb, extack);
	if (err)
		return err;

	sch_tree_lock(sch);
	if (tb[TCA_DWCS_RATE])
		q->core.link_rate = nla_get_u64(tb[TCA_DWCS_RATE]);
	if (tb[TCA_DWCS_LIMIT]) {
		/* MODEL: a lower limit drops nothing already queued */
		q->core.limit = nla_get_u32(tb[TCA_DWCS_LIMIT]);
		sch->limit = q->core.limit;
	}
	if (tb[TCA_DWCS_RESOLUTION]) {
		u64 now = ktime_get_ns();

		q->core.resolution = nla_get_u64(tb[TCA_DWCS_RESOLUTION]);
		/* every READY key's slot changes */
		for (i = 0; i < q->clhash.hashsize; i++)
			hlist_for_each_entry(cl, &q->clhash.hash[i],
					     common.hnode)
				dwcs_stream_rekey(&q->core, &cl->stream, now);
	}
	sch_tree_unlock(sch);
	return 0;
}

static int dwcs_init(struct Qdisc *sch, struct nlattr *opt,
		     struct netlink_ext_ack *extack)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	u32 limit = qdisc_dev(sch)->tx_queue_len;
	struct nlattr *tb[TCA_DWCS_MAX + 1] = { NULL };
	unsigned int i;
	int err;

	BUILD_BUG_ON(sizeof(struct dwcs_skb_cb) > QDISC_CB_PRIV_LEN);

	q->sch = sch;
	qdisc_watchdog_init(&q->watchdog, sch);
	__skb_queue_head_init(&q->be);
	for (i = 0; i < DWCS_SET_MAX; i++)
		q->sets[i] = RB_ROOT_CACHED;
	err = qdisc_class_hash_init(&q->clhash);
	if (err)
		return err;

	if (opt) {
		err = dwcs_parse_opts(opt, tb, extack);
		if (err)
			return err;
	}
	if (!limit || limit > DWCS_MAX_LIMIT)
		limit = DWCS_DEFAULT_LIMIT;
	if (tb[TCA_DWCS_LIMIT])
		limit = nla_get_u32(tb[TCA_DWCS_LIMIT]);
	dwcs_sched_init(&q->core, &dwcs_core_ops,
			tb[TCA_DWCS_RATE] ? nla_get_u64(tb[TCA_DWCS_RATE]) : 0,
			limit,
			tb[TCA_DWCS_RESOLUTION] ?
			nla_get_u64(tb[TCA_DWCS_RESOLUTION]) : 0);
	sch->limit = limit;
	return 0;
}

static void dwcs_reset(struct Qdisc *sch)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct dwcs_class *cl;
	unsigned int i;

	for (i = 0; i < q->clhash.hashsize; i++) {
		hlist_for_each_entry(cl, &q->clhash.hash[i], common.hnode) {
			dwcs_stream_remove(&q->core, &cl->stream);
			__skb_queue_purge(&cl->queue);
			cl->qstats.backlog = 0;
			/* fresh timing and window; the counters stay */
			dwcs_stream_reset(&cl->stream);
		}
	}
	__skb_queue_purge(&q->be);
	dwcs_sched_reset(&q->core);
	sch->q.qlen = 0;
	sch->qstats.backlog = 0;
	qdisc_watchdog_cancel(&q->watchdog);
}

static void dwcs_destroy(struct Qdisc *sch)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct hlist_node *next;
	struct dwcs_class *cl;
	unsigned int i;

	qdisc_watchdog_cancel(&q->watchdog);
	for (i = 0; i < q->clhash.hashsize; i++) {
		hlist_for_each_entry_safe(cl, next, &q->clhash.hash[i],
					  common.hnode) {
			__skb_queue_purge(&cl->queue);
			kfree(cl);
		}
	}
	__skb_queue_purge(&q->be);
	qdisc_class_hash_destroy(&q->clhash);
}

static int dwcs_dump(struct Qdisc *sch, struct sk_buff *skb)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct nlattr *nest;

	nest = nla_nest_start_noflag(skb, TCA_OPTIONS);
	if (!nest)
		goto nla_put_failure;
	if (nla_put_u64_64bit(skb, TCA_DWCS_RATE, q->core.link_rate,
			      TCA_DWCS_PAD) ||
	    nla_put_u32(skb, TCA_DWCS_LIMIT, q->core.limit) ||
	    nla_put_u64_64bit(skb, TCA_DWCS_RESOLUTION, q->core.resolution,
			      TCA_DWCS_PAD))
		goto nla_put_failure;
	return nla_nest_end(skb, nest);

nla_put_failure:
	nla_nest_cancel(skb, nest);
	return -EMSGSIZE;
}

static void dwcs_add_counters(struct tc_dwcs_qdisc_xstats *st,
			      const struct dwcs_counters *c)
{
	st->sent_packets += c->sent_packets;
	st->sent_bytes += c->sent_bytes;
	st->drops_late += c->drops[DWCS_REASON_LATE];
	st->drops_window += c->drops[DWCS_REASON_WINDOW];
	st->drops_frame += c->drops[DWCS_REASON_FRAME];
	st->drops_queue_full += c->drops[DWCS_REASON_QUEUE_FULL];
	st->refused += c->refused;
	st->deadline_misses += c->deadline_misses;
	st->window_violations += c->window_violations;
}

static int dwcs_dump_stats(struct Qdisc *sch, struct gnet_dump *d)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct tc_dwcs_qdisc_xstats st = { 0 };
	const struct dwcs_counters *be = &q->core.be;
	struct dwcs_class *cl;
	unsigned int i;

	sch_tree_lock(sch);
	st.classes = q->nclasses;
	for (i = 0; i < q->clhash.hashsize; i++)
		hlist_for_each_entry(cl, &q->clhash.hash[i], common.hnode)
			dwcs_add_counters(&st, &cl->stream.cnt);
	dwcs_add_counters(&st, be);
	st.be_sent_packets = be->sent_packets;
	st.be_sent_bytes = be->sent_bytes;
	st.be_drops_queue_full = be->drops[DWCS_REASON_QUEUE_FULL];
	st.be_refused = be->refused;
	st.be_backlog_packets = be->backlog_packets;
	sch_tree_unlock(sch);
	return gnet_stats_copy_app(d, &st, sizeof(st));
}

/* ---- classes ---------------------------------------------------------- */

static unsigned long dwcs_class_find(struct Qdisc *sch, u32 classid)
{
	return (unsigned long)dwcs_find(sch, classid);
}

/* Classes have no child qdisc; tc asks anyway when grafting. */
static struct Qdisc *dwcs_class_leaf(struct Qdisc *sch, unsigned long arg)
{
	return NULL;
}

static int dwcs_class_change(struct Qdisc *sch, u32 classid, u32 parentid,
			     struct nlattr **tca, unsigned long *arg,
			     struct netlink_ext_ack *extack)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct dwcs_class *cl = (struct dwcs_class *)*arg;
	struct nlattr *tb[TCA_DWCS_CLASS_MAX + 1];
	struct dwcs_stream_config cfg = {};
	u32 flags;
	int err;

	if (!tca[TCA_OPTIONS]) {
		NL_SET_ERR_MSG(extack, "dwcs class: options are required");
		return -EINVAL;
	}
	err = nla_parse_nested(tb, TCA_DWCS_CLASS_MAX, tca[TCA_OPTIONS],
			       dwcs_class_policy, extack);
	if (err < 0)
		return err;

	if (parentid && parentid != TC_H_ROOT && parentid != sch->handle) {
		NL_SET_ERR_MSG(extack, "dwcs classes hang from the qdisc itself: no class hierarchy");
		return -EINVAL;
	}
	if (!cl) {
		if (!classid || TC_H_MAJ(classid ^ sch->handle) ||
		    !TC_H_MIN(classid)) {
			NL_SET_ERR_MSG(extack, "class id must be <qdisc major>:<minor> with minor above 0");
			return -EINVAL;
		}
		if (q->nclasses >= DWCS_MAX_CLASSES) {
			NL_SET_ERR_MSG(extack, "dwcs: too many classes (at most 65534)");
			return -ENOSPC;
		}
		if (!tb[TCA_DWCS_CLASS_PERIOD] && !(tb[TCA_DWCS_CLASS_FLAGS] &&
		    (nla_get_u32(tb[TCA_DWCS_CLASS_FLAGS]) &
		     TC_DWCS_CLASS_F_APERIODIC))) {
			NL_SET_ERR_MSG(extack, "a new class needs a period, or the aperiodic flag");
			return -EINVAL;
		}
		cfg.droppable = false;
	} else {
		cfg = cl->stream.cfg;
	}

	/* the new configuration as a whole, before anything changes */
	flags = cl ? (cfg.droppable ? TC_DWCS_CLASS_F_DROPPABLE : 0) |
		     (cfg.work_conserving ? TC_DWCS_CLASS_F_WORK_CONSERVING : 0) |
		     (cfg.period ? 0 : TC_DWCS_CLASS_F_APERIODIC) : 0;
	if (tb[TCA_DWCS_CLASS_FLAGS])
		flags = nla_get_u32(tb[TCA_DWCS_CLASS_FLAGS]);
	if (tb[TCA_DWCS_CLASS_PERIOD])
		cfg.period = nla_get_u64(tb[TCA_DWCS_CLASS_PERIOD]);
	if (tb[TCA_DWCS_CLASS_OLN])
		cfg.oln = nla_get_u32(tb[TCA_DWCS_CLASS_OLN]);
	if (tb[TCA_DWCS_CLASS_OLD])
		cfg.old = nla_get_u32(tb[TCA_DWCS_CLASS_OLD]);
	if (flags & TC_DWCS_CLASS_F_APERIODIC) {
		if (tb[TCA_DWCS_CLASS_PERIOD] && cfg.period) {
			NL_SET_ERR_MSG_ATTR(extack, tb[TCA_DWCS_CLASS_PERIOD],
					    "an aperiodic class has no period");
			return -EINVAL;
		}
		cfg.period = 0;
	} else if (!cfg.period) {
		NL_SET_ERR_MSG(extack, "period 0 needs the aperiodic flag");
		return -EINVAL;
	}
	if (!dwcs_window_valid(cfg.oln, cfg.old)) {
		NL_SET_ERR_MSG(extack, "window oln/old: need oln <= old, and old > 0 unless both are 0");
		return -EINVAL;
	}
	cfg.droppable = flags & TC_DWCS_CLASS_F_DROPPABLE;
	/* MODEL: aperiodic streams are always eligible */
	cfg.work_conserving = (flags & TC_DWCS_CLASS_F_WORK_CONSERVING) ||
			      !cfg.period;

	if (cl) {
		sch_tree_lock(sch);
		dwcs_stream_change(&q->core, &cl->stream, &cfg, ktime_get_ns());
		sch_tree_unlock(sch);
		return 0;
	}

	cl = kzalloc(sizeof(*cl), GFP_KERNEL);
	if (!cl)
		return -ENOBUFS;
	cl->common.classid = classid;
	__skb_queue_head_init(&cl->queue);
	gnet_stats_basic_sync_init(&cl->bstats);
	dwcs_stream_init(&cl->stream, &cfg);

	sch_tree_lock(sch);
	qdisc_class_hash_insert(&q->clhash, &cl->common);
	q->nclasses++;
	sch_tree_unlock(sch);
	qdisc_class_hash_grow(sch, &q->clhash);

	*arg = (unsigned long)cl;
	return 0;
}

static int dwcs_class_delete(struct Qdisc *sch, unsigned long arg,
			     struct netlink_ext_ack *extack)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct dwcs_class *cl = (struct dwcs_class *)arg;

	sch_tree_lock(sch);
	dwcs_purge_class(sch, cl);
	qdisc_class_hash_remove(&q->clhash, &cl->common);
	q->nclasses--;
	sch_tree_unlock(sch);
	kfree(cl);
	return 0;
}

static int dwcs_class_dump(struct Qdisc *sch, unsigned long arg,
			   struct sk_buff *skb, struct tcmsg *tcm)
{
	struct dwcs_class *cl = (struct dwcs_class *)arg;
	const struct dwcs_stream_config *cfg = &cl->stream.cfg;
	struct nlattr *nest;
	u32 flags;

	flags = (cfg->droppable ? TC_DWCS_CLASS_F_DROPPABLE : 0) |
		(cfg->period ? 0 : TC_DWCS_CLASS_F_APERIODIC) |
		(cfg->work_conserving && cfg->period ?
		 TC_DWCS_CLASS_F_WORK_CONSERVING : 0);
	tcm->tcm_parent = TC_H_ROOT;
	tcm->tcm_handle = cl->common.classid;
	tcm->tcm_info = 0;

	nest = nla_nest_start_noflag(skb, TCA_OPTIONS);
	if (!nest)
		goto nla_put_failure;
	if (nla_put_u64_64bit(skb, TCA_DWCS_CLASS_PERIOD, cfg->period,
			      TCA_DWCS_CLASS_PAD) ||
	    nla_put_u32(skb, TCA_DWCS_CLASS_OLN, cfg->oln) ||
	    nla_put_u32(skb, TCA_DWCS_CLASS_OLD, cfg->old) ||
	    nla_put_u32(skb, TCA_DWCS_CLASS_FLAGS, flags))
		goto nla_put_failure;
	return nla_nest_end(skb, nest);

nla_put_failure:
	nla_nest_cancel(skb, nest);
	return -EMSGSIZE;
}

static int dwcs_class_dump_stats(struct Qdisc *sch, unsigned long arg,
				 struct gnet_dump *d)
{
	struct dwcs_class *cl = (struct dwcs_class *)arg;
	const struct dwcs_stream *s = &cl->stream;
	const struct dwcs_counters *c = &s->cnt;
	struct tc_dwcs_xstats xs = {
		.sent_packets		= c->sent_packets,
		.sent_bytes		= c->sent_bytes,
		.drops_late		= c->drops[DWCS_REASON_LATE],
		.drops_window		= c->drops[DWCS_REASON_WINDOW],
		.drops_frame		= c->drops[DWCS_REASON_FRAME],
		.drops_queue_full	= c->drops[DWCS_REASON_QUEUE_FULL],
		.refused		= c->refused,
		.deadline_misses	= c->deadline_misses,
		.window_violations	= c->window_violations,
		.queue_delay_sum_ns	= c->delay_sum,
		.queue_delay_max_ns	= c->delay_max,
		.backlog_packets	= c->backlog_packets,
		.backlog_bytes		= c->backlog_bytes,
		.x			= s->x,
		.y			= s->y,
		.oln			= s->cfg.oln,
		.old			= s->cfg.old,
	};

	if (gnet_stats_copy_basic(d, NULL, &cl->bstats, true) < 0 ||
	    gnet_stats_copy_queue(d, NULL, &cl->qstats,
				  skb_queue_len(&cl->queue)) < 0)
		return -1;
	return gnet_stats_copy_app(d, &xs, sizeof(xs));
}

static void dwcs_class_walk(struct Qdisc *sch, struct qdisc_walker *arg)
{
	struct dwcs_sched_data *q = qdisc_priv(sch);
	struct dwcs_class *cl;
	unsigned int i;

	if (arg->stop)
		return;
	for (i = 0; i < q->clhash.hashsize; i++) {
		hlist_for_each_entry(cl, &q->clhash.hash[i], common.hnode) {
			if (arg->count < arg->skip) {
				arg->count++;
				continue;
			}
			if (arg->fn(sch, (unsigned long)cl, arg) < 0) {
				arg->stop = 1;
				return;
			}
			arg->count++;
		}
	}
}

static const struct Qdisc_class_ops dwcs_class_ops = {
	.leaf		= dwcs_class_leaf,
	.find		= dwcs_class_find,
	.change		= dwcs_class_change,
	.delete		= dwcs_class_delete,
	.walk		= dwcs_class_walk,
	.dump		= dwcs_class_dump,
	.dump_stats	= dwcs_class_dump_stats,
};

static struct Qdisc_ops dwcs_qdisc_ops __read_mostly = {
	.cl_ops		= &dwcs_class_ops,
	.id		= "dwcs",
	.priv_size	= sizeof(struct dwcs_sched_data),
	.enqueue	= dwcs_enqueue,
	.dequeue	= dwcs_dequeue,
	.peek		= qdisc_peek_dequeued,
	.init		= dwcs_init,
	.reset		= dwcs_reset,
	.destroy	= dwcs_destroy,
	.change		= dwcs_change,
	.dump		= dwcs_dump,
	.dump_stats	= dwcs_dump_stats,
	.owner		= THIS_MODULE,
};

#ifdef MODULE_ALIAS_NET_SCH
MODULE_ALIAS_NET_SCH("dwcs");
#endif

static int __init dwcs_module_init(void)
{
	return register_qdisc(&dwcs_qdisc_ops);
}

static void __exit dwcs_module_exit(void)
{
	unregister_qdisc(&dwcs_qdisc_ops);
}

module_init(dwcs_module_init);
module_exit(dwcs_module_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Dynamic Window-Constrained Scheduling (DWCS) qdisc");
