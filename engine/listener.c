/* Client listeners: the STARTTLS port and the direct-TLS port (XEP-0368 style). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/listener.h>

#include "engine/engine.h"
#include "lib/log.h"

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	char ip[64] = "?";
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
	conn_accept(fd, ip, arg != NULL); /* TCP_NODELAY comes from the listening socket */
}

static void on_error(struct evconnlistener *l, void *arg)
{
	/* EMFILE and friends: log and keep going; the listener retries on its own. */
	log_warn("accept");
}

/* "host:port" or "[v6]:port" -> sockaddr. */
static int parse_addr(const char *s, struct sockaddr_storage *ss, int *len)
{
	*len = sizeof *ss;
	return evutil_parse_sockaddr_port(s, (struct sockaddr *)ss, len);
}

#define MAX_LISTENERS 4
static struct evconnlistener *listeners[MAX_LISTENERS];
static int nlisteners;

/* Health: every listening socket still accepts (SO_ACCEPTCONN), not just "the pid lives". */
bool listeners_alive(void)
{
	for (int i = 0; i < nlisteners; i++) {
		int on = 0;
		socklen_t len = sizeof on;
		evutil_socket_t fd = evconnlistener_get_fd(listeners[i]);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0 || !on)
			return false;
	}
	return nlisteners > 0;
}

struct evconnlistener *listener_open(const char *addr, bool direct_tls);
struct evconnlistener *listener_open(const char *addr, bool direct_tls)
{
	struct sockaddr_storage ss;
	int len;
	if (parse_addr(addr, &ss, &len) < 0) {
		log_warnx("listen: bad address %s", addr);
		return NULL;
	}
	struct evconnlistener *l = evconnlistener_new_bind(
		server.base, on_accept, direct_tls ? (void *)1 : NULL,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
		(struct sockaddr *)&ss, len);
	if (!l) {
		log_warn("listen %s", addr);
		return NULL;
	}
	evconnlistener_set_error_cb(l, on_error);
	/* Accepted sockets inherit it (Linux): no system call per connection for it. */
	int one = 1;
	if (setsockopt(evconnlistener_get_fd(l), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
		log_warn("listen %s: TCP_NODELAY", addr);
	if (nlisteners < MAX_LISTENERS)
		listeners[nlisteners++] = l;
	log_info("listening on %s (%s)", addr, direct_tls ? "direct TLS" : "STARTTLS");
	return l;
}
