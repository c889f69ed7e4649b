/*
 * echo_uring: a single-threaded io_uring echo server, the hand-written
 * liburing baseline for `bench/compare`.
 *
 * Design:
 *  - one ring, created with SINGLE_ISSUER|DEFER_TASKRUN when the kernel has
 *    them (falling back to COOP_TASKRUN, then to no flags);
 *  - one multishot accept on the listening socket;
 *  - one multishot recv per connection, taking buffers from a provided
 *    buffer ring (group 0, NBUFS buffers of BUF_SIZE bytes);
 *  - the received buffer itself is sent back (no copy). Each connection
 *    has at most one send in flight, so bytes leave in the order they came
 *    and short sends are resumed; further buffers queue behind it in an
 *    intrusive list indexed by buffer id (a buffer is in at most one queue);
 *  - a buffer goes back to the ring only after its send has completed.
 *    When the ring runs dry the kernel ends that connection's multishot recv
 *    with -ENOBUFS; the connection waits in a FIFO and is re-armed as
 *    buffers are recycled, which is the server's backpressure.
 *  - a connection is closed only when no operation of its own is in flight,
 *    so no completion ever refers to a reused descriptor.
 *
 * Packet mode keeps the tail of an incomplete packet (<= 254 bytes) in the
 * connection and copies it into headroom reserved before the next buffer,
 * so whole packets are always sent from one contiguous region.
 *
 * An idle connection holds only its slot in the fd-indexed table: no buffer.
 *
 * Build: gcc -Wall -Wextra -O2 -o echo_uring echo_uring.c -luring
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>

#if __has_include(<liburing/io_uring_version.h>)
#include <liburing/io_uring_version.h>
#if IO_URING_VERSION_MAJOR > 2 || (IO_URING_VERSION_MAJOR == 2 && IO_URING_VERSION_MINOR >= 4)
#define HAVE_IO_URING_SETUP_BUF_RING 1
#endif
#endif

#include "../peer_common.h"

#define QUEUE_DEPTH 4096
#define CQ_DEPTH 16384
/*
 * 1024 buffers of 64 KiB (64 MiB of address space; only pages that data
 * touched become resident). 64 KiB, like the other peers' read buffers,
 * lets a streaming connection move a whole socket-buffer's worth per recv
 * and per send.
 */
#ifndef NBUFS
#define NBUFS 1024 /* power of two; -DNBUFS=16 exercises the -ENOBUFS path */
#endif
#define BUF_SIZE (64 * 1024)
#define HEADROOM 256 /* room to prepend a partial packet (<= 254 bytes) */
#define STRIDE (HEADROOM + BUF_SIZE)
#define BGID 0

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CANCEL };

struct conn {
	int32_t send_head, send_tail; /* queued buffer ids, -1 when empty */
	uint32_t gen;                 /* bumped on close; guards the starved FIFO */
	unsigned char open, recv_armed, sending, eof, dropping, starved;
	unsigned char partial_len;
	unsigned char partial[255];
};

/* Per-buffer send bookkeeping, indexed by buffer id. */
static int32_t buf_next[NBUFS];
static unsigned char *buf_ptr[NBUFS];
static uint32_t buf_len[NBUFS];

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static unsigned char *bufs;
static unsigned recycled; /* buffers added to the ring since the last advance */

static struct conn *conns; /* indexed by fd */
static size_t max_fds;
static enum peer_mode mode;
static int lfd;

/* Connections whose recv ended with -ENOBUFS, waiting for buffers. */
static struct { int fd; uint32_t gen; } *starved;
static size_t starved_head, starved_len;

static inline uint64_t ud(enum op op, int fd)
{
	return ((uint64_t)op << 32) | (uint32_t)fd;
}

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	while (!sqe) {
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
	}
	return sqe;
}

static unsigned char *buf_base(unsigned bid)
{
	return bufs + (size_t)bid * STRIDE;
}

static void recycle(unsigned bid)
{
	io_uring_buf_ring_add(br, buf_base(bid) + HEADROOM, BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(NBUFS), (int)recycled);
	recycled++;
}

static void publish_recycled(void)
{
	if (recycled) {
		io_uring_buf_ring_advance(br, (int)recycled);
		recycled = 0;
	}
}

static struct io_uring_buf_ring *setup_buf_ring(void)
{
#ifdef HAVE_IO_URING_SETUP_BUF_RING
	int ret = 0;
	struct io_uring_buf_ring *r = io_uring_setup_buf_ring(&ring, NBUFS, BGID, 0, &ret);

	if (!r)
		errno = -ret;
	return r;
#else
	/* liburing < 2.4 lacks io_uring_setup_buf_ring(); do what it does. */
	struct io_uring_buf_reg reg;
	size_t size = NBUFS * sizeof(struct io_uring_buf);
	void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	int ret;

	if (mem == MAP_FAILED)
		return NULL;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)mem;
	reg.ring_entries = NBUFS;
	reg.bgid = BGID;
	ret = io_uring_register_buf_ring(&ring, &reg, 0);
	if (ret) {
		munmap(mem, size);
		errno = -ret;
		return NULL;
	}
	io_uring_buf_ring_init(mem);
	return mem;
#endif
}

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, lfd));
}

static void arm_recv(int fd)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, ud(OP_RECV, fd));
	conns[fd].recv_armed = 1;
	conns[fd].starved = 0;
}

static void cancel_recv(int fd)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_cancel64(sqe, ud(OP_RECV, fd), 0);
	io_uring_sqe_set_data64(sqe, ud(OP_CANCEL, fd));
}

static void submit_head_send(int fd)
{
	struct io_uring_sqe *sqe = get_sqe();
	int32_t bid = conns[fd].send_head;

	io_uring_prep_send(sqe, fd, buf_ptr[bid], buf_len[bid], MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud(OP_SEND, fd));
	conns[fd].sending = 1;
}

static void enqueue_send(int fd, unsigned bid, unsigned char *p, uint32_t len)
{
	struct conn *c = &conns[fd];

	buf_ptr[bid] = p;
	buf_len[bid] = len;
	buf_next[bid] = -1;
	if (c->send_tail >= 0)
		buf_next[c->send_tail] = (int32_t)bid;
	else
		c->send_head = (int32_t)bid;
	c->send_tail = (int32_t)bid;
	if (!c->sending)
		submit_head_send(fd);
}

/* Closes the connection once nothing of its own is in flight. */
static void maybe_finish(int fd)
{
	struct conn *c = &conns[fd];

	if (!(c->eof || c->dropping) || c->recv_armed || c->sending)
		return;
	close(fd);
	c->open = 0;
	c->gen++;
}

static void on_accept(struct io_uring_cqe *cqe)
{
	int fd = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		arm_accept();
	if (fd < 0) {
		if (fd != -ECANCELED)
			fprintf(stderr, "echo_uring: accept: %s\n", strerror(-fd));
		return;
	}
	if ((size_t)fd >= max_fds) {
		close(fd);
		return;
	}
	peer_nodelay(fd);
	struct conn *c = &conns[fd];
	uint32_t gen = c->gen;

	memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->open = 1;
	c->send_head = c->send_tail = -1;
	arm_recv(fd);
}

static void on_data(int fd, unsigned bid, uint32_t len)
{
	struct conn *c = &conns[fd];
	unsigned char *data = buf_base(bid) + HEADROOM;
	size_t whole;
	int malformed;

	if (c->eof || c->dropping) {
		recycle(bid);
		return;
	}
	if (mode == MODE_ECHO) {
		enqueue_send(fd, bid, data, len);
		return;
	}
	if (c->partial_len) {
		data -= c->partial_len;
		memcpy(data, c->partial, c->partial_len);
		len += c->partial_len;
		c->partial_len = 0;
	}
	whole = packet_scan(data, len, &malformed);
	if (!malformed && whole < len) {
		c->partial_len = (unsigned char)(len - whole);
		memcpy(c->partial, data + whole, len - whole);
	}
	if (whole)
		enqueue_send(fd, bid, data, (uint32_t)whole);
	else
		recycle(bid);
	if (malformed) {
		/* Echo the whole packets before the garbage, then close. */
		c->eof = 1;
		if (c->recv_armed)
			cancel_recv(fd);
	}
}

static void on_recv(int fd, struct io_uring_cqe *cqe)
{
	struct conn *c = &conns[fd];
	int res = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->recv_armed = 0;
	if (res > 0) {
		on_data(fd, cqe->flags >> IORING_CQE_BUFFER_SHIFT, (uint32_t)res);
		/* A multishot recv can end after data (e.g. CQ overflow). */
		if (!c->recv_armed && !c->eof && !c->dropping)
			arm_recv(fd);
	} else if (res == -ENOBUFS && !c->eof && !c->dropping) {
		c->starved = 1;
		starved[(starved_head + starved_len) % max_fds].fd = fd;
		starved[(starved_head + starved_len) % max_fds].gen = c->gen;
		starved_len++;
	} else if (res == 0 || res == -ECANCELED) {
		c->eof = 1; /* client EOF: finish the queued sends, then close */
	} else if (res < 0) {
		c->eof = 1; /* reset or error: queued sends will fail fast */
	}
	maybe_finish(fd);
}

static void on_send(int fd, struct io_uring_cqe *cqe)
{
	struct conn *c = &conns[fd];
	int32_t bid = c->send_head;
	int res = cqe->res;

	c->sending = 0;
	if (res < 0) {
		/* Peer gone: drop everything queued and stop reading. */
		while (bid >= 0) {
			int32_t next = buf_next[bid];

			recycle((unsigned)bid);
			bid = next;
		}
		c->send_head = c->send_tail = -1;
		c->dropping = 1;
		if (c->recv_armed)
			cancel_recv(fd);
		maybe_finish(fd);
		return;
	}
	if ((uint32_t)res < buf_len[bid]) {
		buf_ptr[bid] += res; /* short send: resume where it stopped */
		buf_len[bid] -= (uint32_t)res;
		submit_head_send(fd);
		return;
	}
	c->send_head = buf_next[bid];
	if (c->send_head < 0)
		c->send_tail = -1;
	recycle((unsigned)bid);
	if (c->send_head >= 0)
		submit_head_send(fd);
	else
		maybe_finish(fd);
}

/* Re-arms starved connections, at most one per buffer that came back. */
static void rearm_starved(unsigned budget)
{
	while (budget && starved_len) {
		int fd = starved[starved_head].fd;
		uint32_t gen = starved[starved_head].gen;
		struct conn *c = &conns[fd];

		starved_head = (starved_head + 1) % max_fds;
		starved_len--;
		if (!c->open || c->gen != gen || !c->starved || c->eof || c->dropping)
			continue;
		arm_recv(fd);
		budget--;
	}
}

static int setup_ring(void)
{
	static const struct { unsigned flags; const char *name; } tries[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		  "SINGLE_ISSUER|DEFER_TASKRUN" },
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		  "SINGLE_ISSUER|COOP_TASKRUN" },
		{ 0, "no setup flags" },
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = tries[i].flags | IORING_SETUP_CQSIZE;
		p.cq_entries = CQ_DEPTH;
		ret = io_uring_queue_init_params(QUEUE_DEPTH, &ring, &p);
		if (ret == 0) {
			fprintf(stderr, "echo_uring: ring with %s\n", tries[i].name);
			return 0;
		}
	}
	return ret;
}

int main(int argc, char **argv)
{
	struct peer_opts opts;
	int ret;

	peer_parse_args(argc, argv, &opts);
	mode = opts.mode;
	signal(SIGPIPE, SIG_IGN);
	max_fds = peer_raise_nofile();
	conns = calloc(max_fds, sizeof(*conns));
	starved = calloc(max_fds, sizeof(*starved));
	bufs = mmap(NULL, (size_t)NBUFS * STRIDE, PROT_READ | PROT_WRITE,
		    MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (!conns || !starved || bufs == MAP_FAILED) {
		perror("echo_uring: allocation");
		return 1;
	}
	lfd = peer_listen(&opts.addr, 0);
	if (lfd < 0) {
		perror("echo_uring: listen");
		return 1;
	}
	ret = setup_ring();
	if (ret) {
		fprintf(stderr, "echo_uring: io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	br = setup_buf_ring();
	if (!br) {
		perror("echo_uring: buffer ring");
		return 1;
	}
	for (unsigned i = 0; i < NBUFS; i++)
		recycle(i);
	publish_recycled();
	arm_accept();
	fprintf(stderr, "echo_uring: listening on %s:%u (%s mode)\n",
		inet_ntoa(opts.addr.sin_addr), ntohs(opts.addr.sin_port),
		mode == MODE_ECHO ? "echo" : "packet");

	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0, returned;

		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			fprintf(stderr, "echo_uring: submit_and_wait: %s\n", strerror(-ret));
			return 1;
		}
		io_uring_for_each_cqe(&ring, head, cqe) {
			uint64_t data = io_uring_cqe_get_data64(cqe);
			int fd = (int)(uint32_t)data;

			seen++;
			switch ((enum op)(data >> 32)) {
			case OP_ACCEPT:
				on_accept(cqe);
				break;
			case OP_RECV:
				on_recv(fd, cqe);
				break;
			case OP_SEND:
				on_send(fd, cqe);
				break;
			case OP_CANCEL:
				break;
			}
		}
		io_uring_cq_advance(&ring, seen);
		returned = recycled;
		publish_recycled();
		rearm_starved(returned);
	}
}
