/*
 * echo_epoll: a single-threaded, level-triggered epoll echo server, the
 * hand-written C baseline for `bench/compare`.
 *
 * Design: one shared 64 KiB read buffer for the whole process. A readable
 * connection gets one read(), and the bytes are written straight back. Only
 * what the kernel refuses (EAGAIN) is copied into a per-connection pending
 * buffer; the connection then waits for EPOLLOUT and stops reading until the
 * pending bytes are gone, so memory per connection is bounded by one read.
 * An idle connection holds only its slot in the fd-indexed table.
 *
 * Packet mode keeps the tail of an incomplete packet (at most 254 bytes) in
 * the connection and glues it in front of the next read, using headroom
 * reserved before the shared read buffer, so whole packets are always
 * written from one contiguous region without a second copy.
 *
 * Build: gcc -Wall -Wextra -O2 -o echo_epoll echo_epoll.c
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/epoll.h>

#include "../peer_common.h"

#define READ_SIZE (64 * 1024)
#define HEADROOM 256 /* room to prepend a partial packet (<= 254 bytes) */
#define MAX_EVENTS 256
#define ACCEPT_BATCH 64

struct conn {
	unsigned char *out; /* pending bytes the kernel did not take yet */
	size_t out_off, out_len, out_cap;
	unsigned char open;
	unsigned char close_after_flush;
	unsigned char partial_len;
	unsigned char partial[255];
};

static int epfd;
static enum peer_mode mode;
static struct conn *conns; /* indexed by fd */
static size_t max_fds;
static unsigned char rbuf[HEADROOM + READ_SIZE];

static void conn_close(int fd)
{
	struct conn *c = &conns[fd];

	free(c->out);
	memset(c, 0, sizeof(*c));
	close(fd); /* also removes it from the epoll set */
}

static int set_interest(int fd, unsigned events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Writes as much as the socket takes; stashes the rest. -1: close now. */
static int send_data(int fd, const unsigned char *p, size_t len)
{
	struct conn *c = &conns[fd];

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;
	}
	if (len == 0)
		return 0;
	if (c->out_cap < len) {
		unsigned char *grown = realloc(c->out, len);

		if (!grown)
			return -1;
		c->out = grown;
		c->out_cap = len;
	}
	memcpy(c->out, p, len);
	c->out_off = 0;
	c->out_len = len;
	/* Stop reading until the backlog is written: bounded memory. */
	return set_interest(fd, EPOLLOUT);
}

static void on_readable(int fd)
{
	struct conn *c = &conns[fd];
	unsigned char *data = rbuf + HEADROOM;
	ssize_t n = read(fd, data, READ_SIZE);
	size_t len, whole;
	int malformed = 0;

	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_close(fd);
		return;
	}
	if (n == 0) {
		/* Client EOF. Nothing is pending (we only read when the
		 * backlog is empty), so the echo is complete: close. */
		conn_close(fd);
		return;
	}
	len = (size_t)n;
	if (mode == MODE_ECHO) {
		if (send_data(fd, data, len))
			conn_close(fd);
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
		/* An incomplete packet: its header says it is longer than
		 * what we have, and no packet exceeds 255 bytes. */
		c->partial_len = (unsigned char)(len - whole);
		memcpy(c->partial, data + whole, len - whole);
	}
	if (send_data(fd, data, whole)) {
		conn_close(fd);
		return;
	}
	if (malformed) {
		if (c->out_len)
			c->close_after_flush = 1;
		else
			conn_close(fd);
	}
}

static void on_writable(int fd)
{
	struct conn *c = &conns[fd];

	while (c->out_off < c->out_len) {
		ssize_t n = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_close(fd);
		return;
	}
	c->out_off = c->out_len = 0;
	if (c->close_after_flush || set_interest(fd, EPOLLIN))
		conn_close(fd);
}

static void on_acceptable(int lfd)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				perror("echo_epoll: accept4");
			return; /* EAGAIN, or try again on the next wake-up */
		}
		if ((size_t)fd >= max_fds) {
			close(fd);
			continue;
		}
		peer_nodelay(fd);
		conns[fd].open = 1;
		ev.data.fd = fd;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev))
			conn_close(fd);
	}
}

int main(int argc, char **argv)
{
	struct peer_opts opts;
	struct epoll_event events[MAX_EVENTS];
	struct epoll_event lev = { .events = EPOLLIN };
	int lfd;

	peer_parse_args(argc, argv, &opts);
	mode = opts.mode;
	signal(SIGPIPE, SIG_IGN);
	max_fds = peer_raise_nofile();
	conns = calloc(max_fds, sizeof(*conns));
	if (!conns) {
		perror("echo_epoll: calloc");
		return 1;
	}
	lfd = peer_listen(&opts.addr, SOCK_NONBLOCK);
	if (lfd < 0) {
		perror("echo_epoll: listen");
		return 1;
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		perror("echo_epoll: epoll_create1");
		return 1;
	}
	lev.data.fd = lfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev)) {
		perror("echo_epoll: epoll_ctl");
		return 1;
	}
	fprintf(stderr, "echo_epoll: listening on %s:%u (%s mode)\n",
		inet_ntoa(opts.addr.sin_addr), ntohs(opts.addr.sin_port),
		mode == MODE_ECHO ? "echo" : "packet");

	for (;;) {
		int n = epoll_wait(epfd, events, MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("echo_epoll: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd;
			unsigned ev = events[i].events;

			if (fd == lfd) {
				on_acceptable(lfd);
				continue;
			}
			if (!conns[fd].open)
				continue; /* closed earlier in this batch */
			if (conns[fd].out_len) {
				/* Waiting for EPOLLOUT; errors surface in send(). */
				if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
					on_writable(fd);
			} else if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				on_readable(fd);
			}
		}
	}
}
