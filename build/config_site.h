/*
 * voiceagent's PJSIP compile-time configuration.
 *
 * build/pjproject.sh copies this file to pjlib/include/pj/config_site.h before configure, and
 * `make install` copies it into the install prefix, where pjsip-sys's bindgen and C shim read it.
 * Struct layouts depend on it (arrays sized by PJSUA_MAX_*, keep-alive fields), so the C build and
 * the Rust bindings must see exactly this file: change it only here, and the recipe rebuilds.
 */
#ifndef VOICEAGENT_CONFIG_SITE_H
#define VOICEAGENT_CONFIG_SITE_H

/* Many concurrent calls. pjsua's default is 4 calls; the 5th fails with PJ_ETOOMANY. */
#define PJSUA_MAX_CALLS            256
/* One conference slot per call stream and one per bot port, slot 0 and a few players. */
#define PJSUA_MAX_CONF_PORTS       (2 * PJSUA_MAX_CALLS + 8)
/* Per ioqueue (SIP and media each have one): RTP + RTCP per call plus SIP transports. Needs
 * epoll (configure --enable-epoll): select() caps this at FD_SETSIZE. */
#define PJ_IOQUEUE_MAX_HANDLES     2048
/* Hash table sizes for transactions and dialogs (not hard caps, but sized for the load). */
#define PJSIP_MAX_TSX_COUNT        ((16 * 1024) - 1)
#define PJSIP_MAX_DIALOG_COUNT     ((16 * 1024) - 1)

/* Audio only. */
#define PJMEDIA_HAS_VIDEO          0

/* RTP keep-alive (empty RTP packets) while a stream has nothing to send, so NAT bindings and
 * carriers' RTP timeouts survive silence. This adds use_stream_ka/stream_ka_cfg to
 * pjsua_acc_config and changes its layout: the bindings are generated from this same file. */
#define PJMEDIA_STREAM_ENABLE_KA   1 /* PJMEDIA_STREAM_KA_EMPTY_RTP */

#endif /* VOICEAGENT_CONFIG_SITE_H */
