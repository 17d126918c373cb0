/* Optional C accelerator of dfagent.wire: decode_mirror / decode_gre for the usual shapes.
 *
 * This is a fast path, not a second decoder. It follows the reference path of syn.py
 * (decode_slow: ip.py, gre.py, erspan.py, ether.py, tcp.py) step by step and, at every point
 * where the reference would raise DecodeError -- and for a few rare shapes it does not
 * handle (IPv6 extension headers, more than 8 VLAN tags) -- it hands the packet to the
 * pure-Python decoder given to configure(). So every error, and its message, still comes
 * from the Python code; this file only ever returns a SynEvent or one of the Skip singletons
 * it was given. tests/unit/test_wire_accel.py checks that it agrees with the Python decoder
 * on the golden corpus and on fuzzed input.
 *
 * Configured once, from syn.py, with configure(SynEvent, encaps, skip_not_syn, skip_not_tcp,
 * skip_not_ip, skip_fragment, fallback_mirror, fallback_gre).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Configuration (strong references, set by configure()). */
static PyObject *SynEventType = NULL; /* a tuple subclass */
static PyObject *Encap[5] = {NULL};   /* erspan1 erspan2 erspan3 teb ip */
static PyObject *SkipNotSyn = NULL, *SkipNotTcp = NULL, *SkipNotIp = NULL, *SkipFragment = NULL;
static PyObject *FallbackMirror = NULL, *FallbackGre = NULL;
/* Construct events with tp_alloc + item stores (what tuple.__new__(SynEvent, items) does,
 * minus the temporary tuple) when SynEvent's layout is exactly a tuple's. */
static int direct_alloc = 0;

/* Cache of the last outer source address seen, so a stream from one mirror shares one
 * bytes object instead of allocating one per packet (bytes are immutable). */
static PyObject *last_mirror4 = NULL;
static PyObject *last_mirror6 = NULL;

enum { E_ERSPAN1 = 0, E_ERSPAN2, E_ERSPAN3, E_TEB, E_IP };
enum { K_ETHER = 0, K_IPV4 = 4, K_IPV6 = 6 };
#define MAX_VLANS 8 /* ether.py MAX_VLAN_TAGS */

/* Result of the C walk: an object (new reference), or FALLBACK. */
#define FALLBACK NULL

static inline unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

static inline uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline PyObject *skip(PyObject *s) {
    Py_INCREF(s);
    return s;
}

static PyObject *cached_addr(PyObject **cache, const unsigned char *p, Py_ssize_t n) {
    PyObject *c = *cache;
    if (c != NULL && PyBytes_GET_SIZE(c) == n && memcmp(PyBytes_AS_STRING(c), p, n) == 0) {
        Py_INCREF(c);
        return c;
    }
    c = PyBytes_FromStringAndSize((const char *)p, n);
    if (c == NULL)
        return NULL;
    Py_INCREF(c);
    Py_XSETREF(*cache, c);
    return c;
}

/* ip.py ipv4_checksum_ok over hlen bytes (all present). */
static int ipv4_checksum_ok(const unsigned char *p, Py_ssize_t hlen) {
    uint32_t sum = 0;
    for (Py_ssize_t i = 0; i + 1 < hlen; i += 2)
        sum += be16(p + i);
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return sum == 0xFFFF;
}

static int is_ether_look(unsigned t) { /* erspan.py _IP_OR_TAG_ETHERTYPES */
    return t == 0x0800 || t == 0x86DD || t == 0x8100 || t == 0x88A8 || t == 0x9100;
}

static int is_ipv6_ext(unsigned nh) { return nh == 0 || nh == 43 || nh == 44 || nh == 60; }

static int is_plausible_v6_next(unsigned nh) { /* ip.py _PLAUSIBLE_V6_NEXT */
    return nh == 6 || nh == 17 || nh == 58 || nh == 59 || is_ipv6_ext(nh);
}

/* erspan.py classify_88be, returning -1 where it would raise. */
static int classify_88be(const unsigned char *b, Py_ssize_t off, Py_ssize_t end) {
    if (end - off < 1)
        return -1;
    unsigned v = b[off] >> 4;
    if (v != 4 && v != 6)
        return K_ETHER;
    int ether = end - off >= 14 && is_ether_look(be16(b + off + 12));
    int ip, kind;
    if (v == 4) {
        Py_ssize_t hlen = (b[off] & 0x0F) * 4;
        ip = end - off >= 20 && hlen >= 20 && end - off >= hlen && ipv4_checksum_ok(b + off, hlen);
        kind = K_IPV4;
    } else {
        ip = end - off >= 40 && is_plausible_v6_next(b[off + 6]) &&
             40 + (Py_ssize_t)be16(b + off + 4) >= end - off;
        kind = K_IPV6;
    }
    if (ip && !ether)
        return kind;
    if (ether && !ip)
        return K_ETHER;
    return -1; /* ambiguous or neither: an error */
}

static PyObject *make_event(PyObject *mirror, int encap, PyObject *key, PyObject *session,
                            const unsigned *vlans, int nvlans, int family,
                            const unsigned char *src, const unsigned char *dst, unsigned sport,
                            unsigned dport, int fragment) {
    Py_ssize_t alen = family == 4 ? 4 : 16;
    PyObject *items[11];
    PyObject *vt = PyTuple_New(nvlans);
    items[0] = mirror;
    items[1] = Encap[encap];
    Py_INCREF(items[1]);
    items[2] = key;
    items[3] = session;
    items[4] = vt;
    items[5] = PyLong_FromLong(family);
    items[6] = PyBytes_FromStringAndSize((const char *)src, alen);
    items[7] = PyBytes_FromStringAndSize((const char *)dst, alen);
    items[8] = PyLong_FromUnsignedLong(sport);
    items[9] = PyLong_FromUnsignedLong(dport);
    items[10] = PyBool_FromLong(fragment);
    PyObject *ev = NULL;
    int ok = 1;
    for (int i = 0; i < 11; i++)
        ok &= items[i] != NULL;
    if (vt != NULL) {
        for (int i = 0; i < nvlans; i++) {
            PyObject *v = PyLong_FromUnsignedLong(vlans[i]);
            if (v == NULL) {
                ok = 0;
                break;
            }
            PyTuple_SET_ITEM(vt, i, v);
        }
    }
    if (ok) {
        if (direct_alloc) {
            ev = ((PyTypeObject *)SynEventType)->tp_alloc((PyTypeObject *)SynEventType, 11);
            if (ev != NULL) {
                for (int i = 0; i < 11; i++)
                    PyTuple_SET_ITEM(ev, i, items[i]); /* steals */
                return ev;
            }
        } else {
            PyObject *t = PyTuple_New(11);
            if (t != NULL) {
                for (int i = 0; i < 11; i++)
                    PyTuple_SET_ITEM(t, i, items[i]); /* steals */
                PyObject *args = PyTuple_Pack(1, t);
                Py_DECREF(t);
                if (args == NULL)
                    return NULL;
                ev = PyTuple_Type.tp_new((PyTypeObject *)SynEventType, args, NULL);
                Py_DECREF(args);
                return ev;
            }
        }
    }
    for (int i = 0; i < 11; i++)
        Py_XDECREF(items[i]);
    return NULL;
}

/* Everything after the GRE base header. `g` is the offset of GRE, `end` where the outer
 * packet's data ends (trimmed to its length field). `mirror` is a borrowed reference.
 * Returns a new reference, NULL with an exception set (memory), or FALLBACK with no
 * exception set: *fallback tells the two apart. */
static PyObject *walk_gre(const unsigned char *b, Py_ssize_t g, Py_ssize_t end, PyObject *mirror,
                          int *fallback) {
    *fallback = 1;
    if (end - g < 4)
        return FALLBACK;
    unsigned gf = be16(b + g), gp = be16(b + g + 2);
    if (gf & 0x4C07) /* version, R, s, recursion bit 5: errors (gre.py) */
        return FALLBACK;
    Py_ssize_t hlen = 4 + (gf & 0x8000 ? 4 : 0) + (gf & 0x2000 ? 4 : 0) + (gf & 0x1000 ? 4 : 0);
    if (end - g < hlen)
        return FALLBACK;
    Py_ssize_t p = g + 4 + (gf & 0x8000 ? 4 : 0);
    int has_key = (gf & 0x2000) != 0;
    uint32_t key = has_key ? be32(b + p) : 0;
    p = g + hlen;

    int encap, kind;
    int has_session = 0;
    unsigned session = 0;
    if (gp == 0x88BE) {
        if ((gf & 0x1000) && p < end && ((b[p] >> 4) == 4 || (b[p] >> 4) == 6)) {
            /* S bit, then what may be raw IP: it must be valid IP (Ethernet is an error) */
            kind = classify_88be(b, p, end);
            if (kind != K_IPV4 && kind != K_IPV6)
                return FALLBACK;
            encap = E_IP;
        } else if (gf & 0x1000) { /* ERSPAN II */
            if (end - p < 8 || be16(b + p) >> 12 != 1)
                return FALLBACK;
            has_session = 1;
            session = be16(b + p + 2) & 0x3FF;
            p += 8;
            encap = E_ERSPAN2;
            kind = K_ETHER;
        } else {
            kind = classify_88be(b, p, end);
            if (kind < 0)
                return FALLBACK;
            encap = kind == K_ETHER ? E_ERSPAN1 : E_IP;
        }
    } else if (gp == 0x22EB) { /* ERSPAN III */
        if (end - p < 12 || be16(b + p) >> 12 != 2)
            return FALLBACK;
        has_session = 1;
        session = be16(b + p + 2) & 0x3FF;
        unsigned h5 = be16(b + p + 10);
        unsigned ft = (h5 >> 10) & 0x1F;
        p += 12;
        if (h5 & 1) {
            if (end - p < 8)
                return FALLBACK;
            p += 8;
        }
        if (ft == 0) {
            kind = K_ETHER;
        } else if (ft == 2) {
            if (p >= end)
                return FALLBACK;
            unsigned v = b[p] >> 4;
            if (v == 4)
                kind = K_IPV4;
            else if (v == 6)
                kind = K_IPV6;
            else
                return FALLBACK;
        } else {
            return FALLBACK;
        }
        encap = E_ERSPAN3;
    } else if (gp == 0x6558) {
        encap = E_TEB;
        kind = K_ETHER;
    } else if (gp == 0x0800) {
        encap = E_IP;
        kind = K_IPV4;
    } else if (gp == 0x86DD) {
        encap = E_IP;
        kind = K_IPV6;
    } else {
        return FALLBACK;
    }

    unsigned vlans[MAX_VLANS];
    int nvlans = 0;
    if (kind == K_ETHER) { /* ether.py parse_ether */
        if (end - p < 14)
            return FALLBACK;
        unsigned et = be16(b + p + 12);
        p += 14;
        while (et == 0x8100 || et == 0x88A8 || et == 0x9100) {
            if (nvlans >= MAX_VLANS || end - p < 4)
                return FALLBACK;
            vlans[nvlans++] = be16(b + p) & 0x0FFF;
            et = be16(b + p + 2);
            p += 4;
        }
        if (et == 0x0800)
            kind = K_IPV4;
        else if (et == 0x86DD)
            kind = K_IPV6;
        else {
            *fallback = 0;
            return skip(SkipNotIp);
        }
    }

    const unsigned char *src, *dst;
    unsigned proto;
    int first_fragment = 0;
    Py_ssize_t pend;
    if (kind == K_IPV4) { /* ip.py parse_ipv4 */
        if (end - p < 20 || b[p] >> 4 != 4)
            return FALLBACK;
        Py_ssize_t ihl = (b[p] & 0x0F) * 4;
        Py_ssize_t total = be16(b + p + 2);
        if (ihl < 20 || total < ihl || end - p < ihl)
            return FALLBACK;
        pend = end < p + total ? end : p + total;
        unsigned frag = be16(b + p + 6);
        if (frag & 0x1FFF) {
            *fallback = 0;
            return skip(SkipFragment);
        }
        first_fragment = (frag & 0x2000) != 0;
        proto = b[p + 9];
        src = b + p + 12;
        dst = b + p + 16;
        p += ihl;
    } else { /* ip.py parse_ipv6, without extension headers */
        if (end - p < 40 || b[p] >> 4 != 6)
            return FALLBACK;
        Py_ssize_t plen = be16(b + p + 4);
        proto = b[p + 6];
        if (is_ipv6_ext(proto))
            return FALLBACK;
        pend = end < p + 40 + plen ? end : p + 40 + plen;
        src = b + p + 8;
        dst = b + p + 24;
        p += 40;
    }
    if (proto != 6) {
        *fallback = 0;
        return skip(SkipNotTcp);
    }
    /* tcp.py parse_tcp */
    if (pend - p < 14 || b[p + 12] >> 4 < 5)
        return FALLBACK;
    *fallback = 0;
    if ((b[p + 13] & 0x12) != 0x02)
        return skip(SkipNotSyn);

    PyObject *keyo, *sesso;
    if (has_key) {
        keyo = PyLong_FromUnsignedLong(key);
        if (keyo == NULL)
            return NULL;
    } else {
        keyo = Py_None;
        Py_INCREF(keyo);
    }
    if (has_session) {
        sesso = PyLong_FromUnsignedLong(session);
        if (sesso == NULL) {
            Py_DECREF(keyo);
            return NULL;
        }
    } else {
        sesso = Py_None;
        Py_INCREF(sesso);
    }
    Py_INCREF(mirror);
    return make_event(mirror, encap, keyo, sesso, vlans, nvlans, kind, src, dst, be16(b + p),
                      be16(b + p + 2), first_fragment);
}

/* ip.py parse_ipv4 / parse_ipv6 for the outer header, then walk_gre. */
static PyObject *walk_outer(const unsigned char *b, Py_ssize_t len, int *fallback) {
    *fallback = 1;
    if (len < 1)
        return FALLBACK;
    unsigned v = b[0] >> 4;
    Py_ssize_t g, end;
    PyObject *mirror;
    if (v == 4) {
        if (len < 20)
            return FALLBACK;
        Py_ssize_t ihl = (b[0] & 0x0F) * 4;
        Py_ssize_t total = be16(b + 2);
        if (ihl < 20 || total < ihl || len < ihl)
            return FALLBACK;
        if (be16(b + 6) & 0x1FFF) { /* a later fragment, whatever it carries */
            *fallback = 0;
            return skip(SkipFragment);
        }
        if (b[9] != 47)
            return FALLBACK;
        end = len < total ? len : total;
        g = ihl;
        mirror = cached_addr(&last_mirror4, b + 12, 4);
    } else if (v == 6) {
        if (len < 40 || b[6] != 47) /* extension headers, or not GRE: the reference decides */
            return FALLBACK;
        Py_ssize_t plen = be16(b + 4);
        end = len < 40 + plen ? len : 40 + plen;
        g = 40;
        mirror = cached_addr(&last_mirror6, b + 8, 16);
    } else {
        return FALLBACK;
    }
    if (mirror == NULL) {
        *fallback = 0;
        return NULL;
    }
    PyObject *r = walk_gre(b, g, end, mirror, fallback);
    Py_DECREF(mirror);
    return r;
}

static int not_configured(void) {
    if (SynEventType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "dfagent.wire._fastsyn: configure() not called");
        return 1;
    }
    return 0;
}

/* Borrow the bytes of `obj`: bytes directly, anything else through the buffer protocol.
 * Returns 0 on success; -1 when obj has no C-contiguous buffer (no exception left set). */
static int get_bytes(PyObject *obj, Py_buffer *view, const unsigned char **b, Py_ssize_t *n) {
    if (PyBytes_CheckExact(obj)) {
        view->obj = NULL;
        *b = (const unsigned char *)PyBytes_AS_STRING(obj);
        *n = PyBytes_GET_SIZE(obj);
        return 0;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Clear();
        return -1;
    }
    if (view->itemsize != 1) {
        PyBuffer_Release(view);
        return -1;
    }
    *b = (const unsigned char *)view->buf;
    *n = view->len;
    return 0;
}

/* Both entry points take (buf) / (buf, mirror) positionally; anything else (keywords, a wrong
 * count) goes to the Python function, which accepts or rejects it as it always did. */
static PyObject *decode_mirror(PyObject *self, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
    (void)self;
    if (not_configured())
        return NULL;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_buffer view;
    const unsigned char *b;
    Py_ssize_t n;
    if (nargs == 1 && kwnames == NULL && get_bytes(args[0], &view, &b, &n) == 0) {
        int fallback;
        PyObject *r = walk_outer(b, n, &fallback);
        if (view.obj != NULL)
            PyBuffer_Release(&view);
        if (!fallback)
            return r;
    }
    return PyObject_Vectorcall(FallbackMirror, args, nargs, kwnames);
}

static PyObject *decode_gre(PyObject *self, PyObject *const *args, size_t nargsf,
                            PyObject *kwnames) {
    (void)self;
    if (not_configured())
        return NULL;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_buffer view;
    const unsigned char *b;
    Py_ssize_t n;
    if (nargs == 2 && kwnames == NULL && get_bytes(args[0], &view, &b, &n) == 0) {
        int fallback;
        PyObject *r = walk_gre(b, 0, n, args[1], &fallback);
        if (view.obj != NULL)
            PyBuffer_Release(&view);
        if (!fallback)
            return r;
    }
    return PyObject_Vectorcall(FallbackGre, args, nargs, kwnames);
}

static PyObject *configure(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *type, *encaps, *s_syn, *s_tcp, *s_ip, *s_frag, *fb_m, *fb_g;
    if (!PyArg_ParseTuple(args, "O!O!OOOOOO:configure", &PyType_Type, &type, &PyTuple_Type,
                          &encaps, &s_syn, &s_tcp, &s_ip, &s_frag, &fb_m, &fb_g))
        return NULL;
    PyTypeObject *t = (PyTypeObject *)type;
    if (!PyType_IsSubtype(t, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "configure: the event type must be a tuple subclass");
        return NULL;
    }
    if (PyTuple_GET_SIZE(encaps) != 5) {
        PyErr_SetString(PyExc_ValueError, "configure: encaps must have 5 names");
        return NULL;
    }
    if (!PyCallable_Check(fb_m) || !PyCallable_Check(fb_g)) {
        PyErr_SetString(PyExc_TypeError, "configure: fallbacks must be callable");
        return NULL;
    }
    Py_INCREF(type);
    Py_XSETREF(SynEventType, type);
    for (int i = 0; i < 5; i++) {
        PyObject *e = PyTuple_GET_ITEM(encaps, i);
        Py_INCREF(e);
        Py_XSETREF(Encap[i], e);
    }
    Py_INCREF(s_syn);
    Py_XSETREF(SkipNotSyn, s_syn);
    Py_INCREF(s_tcp);
    Py_XSETREF(SkipNotTcp, s_tcp);
    Py_INCREF(s_ip);
    Py_XSETREF(SkipNotIp, s_ip);
    Py_INCREF(s_frag);
    Py_XSETREF(SkipFragment, s_frag);
    Py_INCREF(fb_m);
    Py_XSETREF(FallbackMirror, fb_m);
    Py_INCREF(fb_g);
    Py_XSETREF(FallbackGre, fb_g);
    /* tp_alloc + item stores is exactly tuple.__new__(cls, items) while the subclass adds
     * nothing to a tuple's layout (a NamedTuple has __slots__ = ()). From 3.14 a tuple
     * caches its hash in a field tp_alloc does not set, so go through tuple.__new__ there. */
    direct_alloc = PY_VERSION_HEX < 0x030E0000 && t->tp_basicsize == PyTuple_Type.tp_basicsize &&
                   t->tp_itemsize == PyTuple_Type.tp_itemsize && t->tp_dictoffset == 0 &&
                   t->tp_alloc == PyType_GenericAlloc;
    return PyBool_FromLong(direct_alloc);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(event_type, encaps, skip_not_syn, skip_not_tcp, skip_not_ip, skip_fragment,\n"
     "          fallback_mirror, fallback_gre) -> bool (events built without tuple.__new__)"},
    {"decode_mirror", (PyCFunction)(void (*)(void))decode_mirror, METH_FASTCALL | METH_KEYWORDS,
     "decode_mirror(buf) -> SynEvent | Skip; raises DecodeError (from the Python fallback)"},
    {"decode_gre", (PyCFunction)(void (*)(void))decode_gre, METH_FASTCALL | METH_KEYWORDS,
     "decode_gre(buf, mirror) -> SynEvent | Skip; raises DecodeError (from the Python "
     "fallback)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dfagent.wire._fastsyn",
    "C fast path of dfagent.wire.decode_mirror / decode_gre (see syn.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastsyn(void) { return PyModule_Create(&module); }
