// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sslbench: N round trips of a 64-byte SSL_write + SSL_read between a client
 * (parent) and an echo server (child) over loopback TCP, to measure what the
 * TLS probes add per call. Prints "ns_per_roundtrip <n>". Each round trip is
 * 4 probed TLS calls (2 reads, 2 writes). Also prints the CPU time (user +
 * system, both processes) per round trip, which the probes are charged to
 * and which is steadier than wall time on a shared machine.
 * usage: sslbench CERT KEY N
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *m) { perror(m); exit(1); }

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: sslbench CERT KEY N\n");
		return 2;
	}
	long n = atol(argv[3]);
	int one = 1;
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (bind(ls, (void *)&a, sizeof(a)) || listen(ls, 1) || getsockname(ls, (void *)&a, &al))
		die("listen");
	pid_t child = fork();
	if (child == 0) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
		if (SSL_CTX_use_certificate_file(ctx, argv[1], SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1)
			die("cert");
		int fd = accept(ls, NULL, NULL);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		SSL *s = SSL_new(ctx);
		SSL_set_fd(s, fd);
		if (SSL_accept(s) != 1)
			die("accept");
		char buf[64];
		int r;
		while ((r = SSL_read(s, buf, sizeof(buf))) > 0)
			SSL_write(s, buf, r);
		_exit(0);
	}
	close(ls);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (void *)&a, sizeof(a)))
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	SSL *s = SSL_new(ctx);
	SSL_set_fd(s, fd);
	if (SSL_connect(s) != 1)
		die("connect tls");
	char msg[64], buf[64];
	memset(msg, 'x', sizeof(msg));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++) {
		if (SSL_write(s, msg, sizeof(msg)) != sizeof(msg))
			die("write");
		int got = 0;
		while (got < (int)sizeof(buf)) {
			int r = SSL_read(s, buf + got, sizeof(buf) - got);
			if (r <= 0)
				die("read");
			got += r;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	SSL_shutdown(s);
	close(fd);
	waitpid(child, NULL, 0);
	double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	struct rusage self, kids;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	double cpu = 0;
	struct timeval tv[] = {self.ru_utime, self.ru_stime, kids.ru_utime, kids.ru_stime};
	for (int i = 0; i < 4; i++)
		cpu += tv[i].tv_sec * 1e9 + tv[i].tv_usec * 1e3;
	printf("ns_per_roundtrip %.0f cpu_ns_per_roundtrip %.0f\n", ns / n, cpu / n);
	return 0;
}
