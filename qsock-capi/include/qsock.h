/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * qsock.h - the QSockets API in C: attach a socket to a packet scheduler,
 * send with per-packet deadlines and drop flags, read scheduler statistics.
 *
 * Link with -lqsock (libqsock.so, built by `cargo build --release -p
 * qsock-core`). The calls follow the QSockets paper (sections 2.2 and 3); a
 * program written to the paper compiles against this header unchanged.
 *
 * Errors: every call returns -1 on failure with errno set, and
 * qsock_last_error() returns a sentence saying what was wrong and what to do:
 *   EINVAL      bad parameters or attributes (including NULL attributes and
 *               names not NUL-terminated within IFNAMSIZ)
 *   EFAULT      a NULL pointer where the call needs one
 *   EPERM       missing privilege (CAP_NET_ADMIN for the dwcs and htb schedulers;
 *               without it, qsocket, qattach, qchange, qinfo and qclose go
 *               through qsockd when its socket exists: /run/qsock/qsockd.sock,
 *               or the path in QSOCK_DAEMON_SOCKET)
 *   ENODEV      no such network device
 *   EOPNOTSUPP  unknown scheduler name, or the scheduler is not available or
 *               not installed on the device (call qsockinit first)
 *   EBUSY       another queueing discipline owns the device, or qsockd refused
 *               to admit the stream (the message is qsockd's: what was asked,
 *               what is left, which setting grants more)
 *   ENOBUFS     the scheduler's queue is full for a non-droppable packet:
 *               retry it later
 *   EBADF       the descriptor is not a qsocket
 *   EIO         an internal error in qsock (a bug: please report it)
 * Successful calls leave errno and the last error message alone.
 *
 * Threads: every call may be made from any thread. Sends on one qsocket run
 * side by side; qchange and qclose wait for sends in flight on that socket.
 *
 * Keep in sync with qsock-capi/src/lib.rs and src/sys.rs: the test
 * `tests::header_matches_rust` (cargo test -p qsock-capi header) checks
 * every struct's size and field offsets, every constant and every function's
 * type against the Rust side.
 */
#ifndef QSOCK_H
#define QSOCK_H

#include <net/if.h>     /* IFNAMSIZ */
#include <stddef.h>     /* size_t */
#include <stdint.h>     /* uint32_t, uint64_t */
#include <sys/socket.h> /* struct sockaddr, socklen_t */
#include <sys/types.h>  /* ssize_t */
#include <sys/uio.h>    /* struct iovec */

/* <net/if.h> defines IFNAMSIZ only with _DEFAULT_SOURCE; IF_NAMESIZE always. */
#ifndef IFNAMSIZ
#define IFNAMSIZ IF_NAMESIZE
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Flags. DWCS_NON_DROPPABLE and DWCS_DROPPABLE are used both as
 * packet_flags.drop_flag and in q_dwcs_attr.stream_flags.
 */
/* Never drop: a lossless stream, or a packet that is sent late rather than
 * dropped (refused with ENOBUFS when the queue is full, so it can be retried). */
#define DWCS_NON_DROPPABLE 1
/* May be dropped when late. A stream is droppable (lossy) unless
 * DWCS_NON_DROPPABLE is given; setting both is EINVAL. */
#define DWCS_DROPPABLE 2
/* A periodic stream may send ahead of its period when the link is idle,
 * instead of being paced to one packet per ipg. Aperiodic and best-effort
 * streams have no period and are always work-conserving. */
#define DWCS_WORK_CONSERVING 4
/* No period: packets carry their own deadlines (EDF); ipg is ignored. */
#define DWCS_APERIODIC 8
/* No deadlines: the scheduler's best-effort FIFO. Not with DWCS_APERIODIC. */
#define DWCS_BEST_EFFORT 16

/*
 * Which device and scheduler, and the attributes.
 *   dev:  the network interface the traffic leaves by, NUL-terminated.
 *   name: "dwcs", "htb", "user" or "auto", NUL-terminated (anything else is
 *         EOPNOTSUPP). "auto" takes the first of dwcs, htb, user that works.
 *   attributes: for qsocket, qattach and qchange a struct q_dwcs_attr *
 *         (NULL is EINVAL); for qsockinit NULL (defaults) or a
 *         struct qsock_init_attr *.
 */
struct qos_params {
	char dev[IFNAMSIZ];
	char name[IFNAMSIZ];
	void *attributes;
};

/*
 * A stream's scheduling attributes. Of every `old` consecutive packets at
 * most `oln` may miss their deadlines: oln <= old, and old > 0 whenever
 * oln > 0 (0/0 means no loss is tolerated). A periodic stream (neither
 * DWCS_APERIODIC nor DWCS_BEST_EFFORT) needs ipg > 0. Unknown stream_flags
 * bits are EINVAL.
 */
struct q_dwcs_attr {
	uint32_t oln;          /* packets that may miss in a window */
	uint32_t old;          /* window length in packets */
	uint32_t ipg;          /* period between packets, in microseconds */
	uint32_t stream_flags; /* DWCS_* flags; 0 = a droppable periodic stream */
};

/*
 * What qsockinit takes in qos_params.attributes (or NULL for defaults).
 * best_effort_kbit caps the device's traffic of no stream, so that where
 * this host's traffic crosses a narrower link further on its bulk traffic
 * waits here, behind the streams, which keep the whole rate. Only htb
 * classes best effort apart (anything else is EOPNOTSUPP); a cap at or above
 * the rate lifts it. Through qsockd it is not applied, and the reason says so.
 */
struct qsock_init_attr {
	uint64_t rate;             /* bits per second in all; 0 = the device's speed */
	uint32_t limit;            /* packets queued at most; 0 = the default */
	uint32_t best_effort_kbit; /* kbit/s; 0 = keep the cap there is (none when installed) */
};

/*
 * Per-packet flags, exactly the paper's two fields: the paper's example
 * fills a struct packet_flags on the stack without zeroing it, so any other
 * field would be garbage in such programs. Frames therefore have their own
 * call, qsendframe(). A NULL pointer means the stream's defaults.
 */
struct packet_flags {
	uint32_t drop_flag; /* 0 = the stream's default, DWCS_NON_DROPPABLE or DWCS_DROPPABLE */
	uint64_t deadline;  /* absolute CLOCK_MONOTONIC nanoseconds; 0 = none */
};

/*
 * How the scheduler is doing for one socket's stream. UINT64_MAX (UINT32_MAX
 * for the window) marks a figure this scheduler does not have.
 */
struct qinfo {
	uint64_t sent_packets;        /* packets that left the scheduler */
	uint64_t sent_bytes;          /* bytes that left the scheduler */
	uint64_t dropped_packets;     /* all drops: the sum of the four below */
	uint64_t dropped_late;        /* late, within the loss window */
	uint64_t dropped_window;      /* late, breaking the loss window */
	uint64_t dropped_frame;       /* the rest of a frame that lost a packet */
	uint64_t dropped_queue_full;  /* droppable packets refused by a full queue */
	uint64_t deadline_misses;     /* dropped late or sent late */
	uint64_t window_violations;   /* times the window-constraint was broken */
	uint64_t delivered_rate_bps;  /* since the previous qinfo (or attach); UINT64_MAX if unknown */
	uint64_t rate_interval_ns;    /* the interval delivered_rate_bps covers */
	uint64_t queue_delay_mean_ns; /* UINT64_MAX if unknown (htb) */
	uint64_t queue_delay_max_ns;  /* UINT64_MAX if unknown (htb) */
	uint64_t backlog_packets;     /* packets waiting in the scheduler */
	uint64_t backlog_bytes;       /* bytes waiting in the scheduler */
	uint32_t window_oln;          /* the current window x'/y'; UINT32_MAX if none */
	uint32_t window_old;
	uint64_t send_buffer_bytes;   /* SO_SNDBUF */
	uint64_t unsent_bytes;        /* bytes the socket still holds (SIOCOUTQ) */
	char scheduler[IFNAMSIZ];     /* the scheduler serving the socket ("auto" resolved) */
};

/* Installs the scheduler params->name as the root queueing discipline of
 * params->dev. Once per device; again with the same scheduler changes only
 * the rate. dwcs and htb need CAP_NET_ADMIN; user needs nothing but runs in
 * this process only. Returns 0. */
int qsockinit(struct qos_params *params);

/* socket(2), then attached to a new stream; returns the descriptor, usable
 * like any other socket. */
int qsocket(int domain, int type, int protocol, struct qos_params *params);

/* Attaches an existing socket to a new stream. Returns 0. On failure the
 * descriptor stays open and untouched. */
int qattach(int fd, struct qos_params *params);

/* New attributes for the socket's stream; a different dev or name moves it to
 * a stream there. Returns 0. */
int qchange(int fd, struct qos_params *params);

/* send(2) / sendto(2) with per-packet flags (NULL = the stream's defaults).
 * flags: 0 (MSG_DONTWAIT and MSG_NOSIGNAL are accepted and have no effect:
 * the packet is handed to the scheduler, which never blocks the caller).
 * Returns len. */
ssize_t qsend(int fd, const void *buf, size_t len, int flags,
	      const struct packet_flags *pflags);
ssize_t qsendto(int fd, const void *buf, size_t len, int flags,
		const struct sockaddr *dest, socklen_t destlen,
		const struct packet_flags *pflags);

/* All packets of one frame, each one datagram, with one deadline and drop
 * flag; the first starts the frame, and the scheduler drops a frame whole.
 * One system call where the backend allows. dest may be NULL on a connected
 * socket. Returns the number of packets accepted: fewer than count only when
 * the queue pushed back, and then the caller retries the rest. */
ssize_t qsendframe(int fd, const struct iovec *packets, size_t count, int flags,
		   const struct sockaddr *dest, socklen_t destlen,
		   const struct packet_flags *pflags);

/* Fills *info. Returns 0. */
int qinfo(int fd, struct qinfo *info);

/* Removes the stream once its queued packets have left, and closes the
 * descriptor, which is closed even when -1 is returned, as with close(2).
 * A descriptor that is not a qsocket is EBADF and stays open. Close a
 * qsocket with qclose, not close(2): close(2) leaks its stream until exit. */
int qclose(int fd);

/* The calling thread's last failure message, never NULL ("" before the
 * first failure); valid until the thread's next failing call. */
const char *qsock_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* QSOCK_H */
