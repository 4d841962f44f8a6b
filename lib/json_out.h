/* JSON output into libevent buffers (the control socket's and the HTTP API's answers). */
#ifndef DUET_LIB_JSON_OUT_H
#define DUET_LIB_JSON_OUT_H

struct evbuffer;

/* s as a JSON string literal: quotes, backslashes and control bytes escaped; other bytes
 * (UTF-8 included) as they are. */
void json_out_string(struct evbuffer *out, const char *s);

#endif
