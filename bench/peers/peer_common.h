/*
 * Shared pieces of the C peer servers: command line, listening socket and
 * the packet-echo framing scan. Header-only so each server stays one
 * translation unit (`gcc -O2 echo_x.c`).
 *
 * Packet protocol (the seed's PacketEchoServer): every packet starts with a
 * one-byte header holding the TOTAL packet length, header included. A
 * header of 1 is an empty packet, 255 the largest; a header of 0 is
 * malformed and the connection is closed after echoing the whole packets
 * that came before it.
 */
#ifndef BERTH_PEER_COMMON_H
#define BERTH_PEER_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum peer_mode { MODE_ECHO, MODE_PACKET };

struct peer_opts {
	struct sockaddr_in addr;
	enum peer_mode mode;
};

static void peer_usage(const char *prog, FILE *out)
{
	fprintf(out,
		"usage: %s [--listen ADDR:PORT] [--mode echo|packet]\n"
		"  --listen  IPv4 address and port (default 127.0.0.1:5001)\n"
		"  --mode    echo: echo the byte stream (default)\n"
		"            packet: echo whole 1-byte-length-prefixed packets\n",
		prog);
}

static int peer_parse_addr(const char *text, struct sockaddr_in *addr)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	char *end;
	long port;
	size_t hlen;

	if (!colon)
		return -1;
	hlen = (size_t)(colon - text);
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
		return -1;
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_port = htons((unsigned short)port);
	return inet_pton(AF_INET, host, &addr->sin_addr) == 1 ? 0 : -1;
}

/* Accepts `--flag value` and `--flag=value`. Exits on a bad command line. */
static void peer_parse_args(int argc, char **argv, struct peer_opts *o)
{
	peer_parse_addr("127.0.0.1:5001", &o->addr);
	o->mode = MODE_ECHO;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *val = NULL;
		int is_listen = 0, is_mode = 0;

		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			peer_usage(argv[0], stdout);
			exit(0);
		}
		if (!strncmp(arg, "--listen", 8) && (arg[8] == '\0' || arg[8] == '='))
			is_listen = 1;
		else if (!strncmp(arg, "--mode", 6) && (arg[6] == '\0' || arg[6] == '='))
			is_mode = 1;
		if (!is_listen && !is_mode) {
			fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], arg);
			peer_usage(argv[0], stderr);
			exit(2);
		}
		val = strchr(arg, '=');
		if (val)
			val++;
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			fprintf(stderr, "%s: %s needs a value\n", argv[0], arg);
			exit(2);
		}
		if (is_listen && peer_parse_addr(val, &o->addr)) {
			fprintf(stderr, "%s: bad --listen '%s' (want IPv4:PORT)\n", argv[0], val);
			exit(2);
		}
		if (is_mode) {
			if (!strcmp(val, "echo"))
				o->mode = MODE_ECHO;
			else if (!strcmp(val, "packet"))
				o->mode = MODE_PACKET;
			else {
				fprintf(stderr, "%s: bad --mode '%s' (echo|packet)\n", argv[0], val);
				exit(2);
			}
		}
	}
}

/* Raises the soft open-files limit to the hard one; returns the new soft limit. */
static size_t peer_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 20))
		return 1u << 20;
	return (size_t)rl.rlim_cur;
}

static int peer_listen(const struct sockaddr_in *addr, int sock_flags)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | sock_flags, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) ||
	    listen(fd, 4096)) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static void peer_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * Scans `len` bytes that start on a packet boundary. Returns the length of
 * the prefix made of whole packets; sets *malformed when the scan stopped on
 * a header of 0 (everything from there on is garbage).
 */
static size_t packet_scan(const unsigned char *p, size_t len, int *malformed)
{
	size_t i = 0;

	*malformed = 0;
	while (i < len) {
		unsigned h = p[i];

		if (h == 0) {
			*malformed = 1;
			break;
		}
		if (h > len - i)
			break;
		i += h;
	}
	return i;
}

#endif
