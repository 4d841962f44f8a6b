/* XML element trees: building, reading, copying, freeing.
 *
 * Allocation is lean because the parser builds one tree per stanza on the hot path: an
 * element is one malloc holding the node, its attribute array, its name and the attribute
 * strings; a text node is one malloc holding the node and its text.  Flags in a private
 * wrapper record which parts still live inline, so that xml_set_attr / xml_add_text can
 * move a part to its own allocation later.  Traversals are iterative: a deep tree (built
 * by code, or parsed by xml_parse_string) cannot overflow the stack. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/xml.h"

enum {
	NODE_ATTRS_INLINE = 1 << 0, /* attrs points into the node's own block */
	NODE_TEXT_INLINE = 1 << 1,  /* text points into the node's own block */
};

struct node_priv {
	struct xml_node pub; /* first: a struct xml_node * is a struct node_priv * */
	unsigned flags;
};

static struct node_priv *node_priv(const struct xml_node *n)
{
	return (struct node_priv *)(uintptr_t)n;
}

/* Capacity of a separately allocated text buffer holding len bytes plus the NUL: the next
 * power of two, so that repeated xml_add_text calls cost amortized O(1) per byte. */
static size_t text_cap(size_t len)
{
	size_t cap = 16;
	while (cap < len + 1)
		cap <<= 1;
	return cap;
}

struct xml_node *xml_elem_new_attrs(const char *name, const char **attrs)
{
	size_t nlen = strlen(name) + 1, npairs = 0, slen = 0;
	if (attrs != NULL) {
		for (; attrs[2 * npairs] != NULL; npairs++)
			slen += strlen(attrs[2 * npairs]) + strlen(attrs[2 * npairs + 1]) + 2;
	}
	size_t arr = npairs ? (2 * npairs + 1) * sizeof(char *) : 0;
	struct node_priv *p = malloc(sizeof(*p) + arr + nlen + slen);
	if (p == NULL)
		return NULL;
	memset(p, 0, sizeof(*p));
	p->pub.type = XML_ELEM;
	char *mem = (char *)(p + 1);
	char **a = (char **)(void *)mem;
	char *str = mem + arr;
	memcpy(str, name, nlen);
	p->pub.name = str;
	str += nlen;
	if (npairs) {
		for (size_t i = 0; i < 2 * npairs; i++) {
			size_t l = strlen(attrs[i]) + 1;
			memcpy(str, attrs[i], l);
			a[i] = str;
			str += l;
		}
		a[2 * npairs] = NULL;
		p->pub.attrs = a;
		p->flags |= NODE_ATTRS_INLINE;
	}
	return &p->pub;
}

struct xml_node *xml_elem_new(const char *name)
{
	return xml_elem_new_attrs(name, NULL);
}

struct xml_node *xml_text_new(const char *text, size_t len)
{
	if (len > SIZE_MAX - sizeof(struct node_priv) - 1)
		return NULL;
	struct node_priv *p = malloc(sizeof(*p) + len + 1);
	if (p == NULL)
		return NULL;
	memset(p, 0, sizeof(*p));
	p->pub.type = XML_TEXT;
	p->pub.text = (char *)(p + 1);
	if (len)
		memcpy(p->pub.text, text, len);
	p->pub.text[len] = '\0';
	p->pub.text_len = len;
	p->flags = NODE_TEXT_INLINE;
	return &p->pub;
}

void xml_append(struct xml_node *parent, struct xml_node *child)
{
	if (child->parent != NULL)
		xml_remove(child); /* moving a node must not leave it in two lists */
	child->parent = parent;
	child->next = NULL;
	if (parent->last_child != NULL)
		parent->last_child->next = child;
	else
		parent->children = child;
	parent->last_child = child;
}

struct xml_node *xml_new_child(struct xml_node *parent, const char *name)
{
	return xml_new_child_ns(parent, name, NULL);
}

struct xml_node *xml_new_child_ns(struct xml_node *parent, const char *name, const char *ns)
{
	const char *attrs[] = {"xmlns", ns, NULL};
	struct xml_node *c = xml_elem_new_attrs(name, ns ? attrs : NULL);
	if (c != NULL)
		xml_append(parent, c);
	return c;
}

int xml_add_text(struct xml_node *elem, const char *text, size_t len)
{
	struct xml_node *last = elem->last_child;
	if (last == NULL || last->type != XML_TEXT) {
		struct xml_node *t = xml_text_new(text, len);
		if (t == NULL)
			return -1;
		xml_append(elem, t);
		return 0;
	}
	if (len == 0)
		return 0;
	struct node_priv *p = node_priv(last);
	size_t old = last->text_len;
	if (len > SIZE_MAX / 2 - old)
		return -1;
	size_t want = old + len;
	if (p->flags & NODE_TEXT_INLINE) {
		char *buf = malloc(text_cap(want));
		if (buf == NULL)
			return -1;
		memcpy(buf, last->text, old);
		last->text = buf;
		p->flags &= ~(unsigned)NODE_TEXT_INLINE;
	} else if (text_cap(old) < want + 1) {
		char *buf = realloc(last->text, text_cap(want));
		if (buf == NULL)
			return -1;
		last->text = buf;
	}
	memcpy(last->text + old, text, len);
	last->text[want] = '\0';
	last->text_len = want;
	return 0;
}

/* Rebuild the attribute block: the old pairs with name replaced by value (or dropped when
 * value is NULL), plus name=value at the end when it was not there. */
int xml_set_attr(struct xml_node *elem, const char *name, const char *value)
{
	char **old = elem->attrs;
	size_t npairs = 0, slen = 0;
	int found = 0;
	for (size_t i = 0; old != NULL && old[i] != NULL; i += 2) {
		if (strcmp(old[i], name) == 0) {
			found = 1;
			continue;
		}
		npairs++;
		slen += strlen(old[i]) + strlen(old[i + 1]) + 2;
	}
	if (!found && value == NULL)
		return 0;
	if (value != NULL) {
		npairs++;
		slen += strlen(name) + strlen(value) + 2;
	}
	char **a = NULL;
	if (npairs) {
		size_t arr = (2 * npairs + 1) * sizeof(char *);
		a = malloc(arr + slen);
		if (a == NULL)
			return -1;
		char *str = (char *)a + arr;
		size_t j = 0;
		for (size_t i = 0; old != NULL && old[i] != NULL; i++) {
			const char *src = old[i];
			if (i % 2 == 0 && strcmp(src, name) == 0) {
				i++; /* skip the pair; the new value goes last */
				continue;
			}
			size_t l = strlen(src) + 1;
			memcpy(str, src, l);
			a[j++] = str;
			str += l;
		}
		if (value != NULL) {
			size_t l = strlen(name) + 1;
			memcpy(str, name, l);
			a[j++] = str;
			str += l;
			l = strlen(value) + 1;
			memcpy(str, value, l);
			a[j++] = str;
		}
		a[j] = NULL;
	}
	struct node_priv *p = node_priv(elem);
	if (!(p->flags & NODE_ATTRS_INLINE))
		free(old);
	p->flags &= ~(unsigned)NODE_ATTRS_INLINE;
	elem->attrs = a;
	return 0;
}

void xml_remove(struct xml_node *child)
{
	struct xml_node *parent = child->parent;
	if (parent == NULL)
		return;
	struct xml_node *prev = NULL;
	for (struct xml_node *c = parent->children; c != NULL; prev = c, c = c->next) {
		if (c != child)
			continue;
		if (prev != NULL)
			prev->next = c->next;
		else
			parent->children = c->next;
		if (parent->last_child == c)
			parent->last_child = prev;
		break;
	}
	child->parent = NULL;
	child->next = NULL;
}

static void node_destroy(struct xml_node *n)
{
	struct node_priv *p = node_priv(n);
	if (n->type == XML_TEXT && !(p->flags & NODE_TEXT_INLINE))
		free(n->text);
	if (n->type == XML_ELEM && !(p->flags & NODE_ATTRS_INLINE))
		free(n->attrs);
	free(p);
}

void xml_free(struct xml_node *node)
{
	if (node == NULL)
		return;
	xml_remove(node);
	/* Post-order without recursion: pop the first child and descend into it; a node with
	 * no children left is freed and we climb back to its parent. */
	struct xml_node *cur = node;
	for (;;) {
		struct xml_node *c = cur->children;
		if (c != NULL) {
			cur->children = c->next;
			cur = c;
			continue;
		}
		struct xml_node *parent = cur->parent;
		int done = cur == node;
		node_destroy(cur);
		if (done)
			return;
		cur = parent;
	}
}

static struct xml_node *node_clone(const struct xml_node *n)
{
	if (n->type == XML_TEXT)
		return xml_text_new(n->text, n->text_len);
	return xml_elem_new_attrs(n->name, (const char **)n->attrs);
}

struct xml_node *xml_copy(const struct xml_node *node)
{
	if (node == NULL)
		return NULL;
	struct xml_node *root = node_clone(node);
	if (root == NULL)
		return NULL;
	/* Walk the source in document order keeping dst at the copy of src. */
	const struct xml_node *src = node;
	struct xml_node *dst = root;
	for (;;) {
		if (src->children != NULL) {
			struct xml_node *c = node_clone(src->children);
			if (c == NULL)
				goto fail;
			xml_append(dst, c);
			src = src->children;
			dst = c;
			continue;
		}
		while (src != node && src->next == NULL) {
			src = src->parent;
			dst = dst->parent;
		}
		if (src == node)
			return root;
		struct xml_node *c = node_clone(src->next);
		if (c == NULL)
			goto fail;
		xml_append(dst->parent, c);
		src = src->next;
		dst = c;
	}
fail:
	xml_free(root);
	return NULL;
}

const char *xml_get_attr(const struct xml_node *elem, const char *name)
{
	if (elem == NULL || elem->attrs == NULL)
		return NULL;
	for (char **a = elem->attrs; a[0] != NULL; a += 2) {
		if (strcmp(a[0], name) == 0)
			return a[1];
	}
	return NULL;
}

/* The value of xmlns (plen 0) or xmlns:prefix on elem itself, or NULL. */
static const char *ns_decl(const struct xml_node *elem, const char *prefix, size_t plen)
{
	if (elem->attrs == NULL)
		return NULL;
	for (char **a = elem->attrs; a[0] != NULL; a += 2) {
		const char *n = a[0];
		if (strncmp(n, "xmlns", 5) != 0)
			continue;
		if (plen == 0 && n[5] == '\0')
			return a[1];
		if (plen != 0 && n[5] == ':' && strncmp(n + 6, prefix, plen) == 0 &&
		    n[6 + plen] == '\0')
			return a[1];
	}
	return NULL;
}

/* A prefixed name ("stream:features") takes the namespace bound to its prefix, an
 * unprefixed one the default namespace; either is looked up from elem towards the root. */
const char *xml_ns(const struct xml_node *elem)
{
	if (elem != NULL && elem->type == XML_TEXT)
		elem = elem->parent;
	if (elem == NULL)
		return NULL;
	const char *colon = strchr(elem->name, ':');
	size_t plen = colon ? (size_t)(colon - elem->name) : 0;
	for (const struct xml_node *e = elem; e != NULL; e = e->parent) {
		const char *ns = ns_decl(e, elem->name, plen);
		if (ns != NULL)
			return ns;
	}
	return NULL;
}

static int ns_equal(const struct xml_node *elem, const char *ns)
{
	const char *have = xml_ns(elem);
	return have != NULL && strcmp(have, ns) == 0;
}

struct xml_node *xml_find_child(const struct xml_node *elem, const char *name, const char *ns)
{
	if (elem == NULL)
		return NULL;
	for (struct xml_node *c = elem->children; c != NULL; c = c->next) {
		if (c->type == XML_ELEM && strcmp(c->name, name) == 0 &&
		    (ns == NULL || ns_equal(c, ns)))
			return c;
	}
	return NULL;
}

struct xml_node *xml_find_child_by_ns(const struct xml_node *elem, const char *ns)
{
	if (elem == NULL)
		return NULL;
	for (struct xml_node *c = elem->children; c != NULL; c = c->next) {
		if (c->type == XML_ELEM && ns_equal(c, ns))
			return c;
	}
	return NULL;
}

struct xml_node *xml_first_elem(const struct xml_node *elem)
{
	if (elem == NULL)
		return NULL;
	for (struct xml_node *c = elem->children; c != NULL; c = c->next) {
		if (c->type == XML_ELEM)
			return c;
	}
	return NULL;
}

struct xml_node *xml_next_elem(const struct xml_node *elem)
{
	if (elem == NULL)
		return NULL;
	for (struct xml_node *c = elem->next; c != NULL; c = c->next) {
		if (c->type == XML_ELEM)
			return c;
	}
	return NULL;
}

char *xml_text(const struct xml_node *elem)
{
	size_t len = 0;
	const struct xml_node *c;
	if (elem == NULL)
		return NULL;
	for (c = elem->children; c != NULL; c = c->next) {
		if (c->type == XML_TEXT)
			len += c->text_len;
	}
	char *s = malloc(len + 1);
	if (s == NULL)
		return NULL;
	size_t off = 0;
	for (c = elem->children; c != NULL; c = c->next) {
		if (c->type != XML_TEXT)
			continue;
		memcpy(s + off, c->text, c->text_len);
		off += c->text_len;
	}
	s[off] = '\0';
	return s;
}

char *xml_child_text(const struct xml_node *elem, const char *name)
{
	struct xml_node *c = xml_find_child(elem, name, NULL);
	return c != NULL ? xml_text(c) : NULL;
}
