/* Small C helpers for what PJSIP only offers as macros or static inline functions, and the
 * sizes/alignments the ABI test compares with Rust's view of the same structs. */
#ifndef VOICEAGENT_PJ_SHIM_H
#define VOICEAGENT_PJ_SHIM_H

#include <stddef.h>
#include <pjsua-lib/pjsua.h>

/* PJMEDIA_PIA_SPF(&port->info): samples per frame (all channels) of a port. */
unsigned voiceagent_port_spf(const pjmedia_port *port);
/* PJMEDIA_PIA_SRATE(&port->info): clock rate of a port. */
unsigned voiceagent_port_srate(const pjmedia_port *port);
/* PJ_VERSION, the version string of the PJSIP tree these bindings were built from. */
const char *voiceagent_pj_version(void);
/* pjsua_schedule_timer2(), a macro that expands to the _dbg variant when PJ_TIMER_DEBUG is on. */
pj_status_t voiceagent_schedule_timer(void (*cb)(void *user_data), void *user_data, unsigned msec);

/* One audio stream, no video, and (2.16+) no RFC 4103 text stream, which pjsua_call_setting_default
 * offers there by default and which costs a clock thread and an RTP port per call. */
void voiceagent_call_setting_audio_only(pjsua_call_setting *opt);

/* The caller's number as PJSIP parsed it: the user part of a sip:/sips: URI or the number of a
 * tel: URI, from the P-Asserted-Identity header when `use_pai` is set, else from the From
 * header. Writes a NUL-terminated string into `buf` (truncated
 * to `len`) and returns its length, or -1 when there is no such header or URI (no
 * fallback from P-Asserted-Identity to From: the caller decides). Never from the display
 * name, which the caller writes freely. */
int voiceagent_rdata_caller(const pjsip_rx_data *rdata, int use_pai, char *buf, size_t len);

/* The SIP edge filter: a PJSIP module that sees every incoming request before the transaction
 * and dialog layers (so before pjsua's REFER, SUBSCRIBE and MESSAGE handling) and answers it
 * statelessly when `decide` returns a status code (>= 300; 0 lets it through). A 405 carries the
 * endpoint's Allow header. `decide` runs on the thread that polls SIP (the pjlib thread). */
typedef int (*voiceagent_edge_decide)(const pj_str_t *method, const pjsip_rx_data *rdata);
pj_status_t voiceagent_edge_register(pjsip_endpoint *endpt, voiceagent_edge_decide decide);
/* Digest authentication of new INVITEs at the edge (after `decide` let them through): an INVITE
 * without a To tag and without valid credentials for `user`/`password` in `realm` is answered
 * 401 with a challenge, statelessly. Call after voiceagent_edge_register; NULL user turns it off.
 * The strings are copied. */
pj_status_t voiceagent_edge_inbound_auth(const char *realm, const char *user, const char *password);
/* INVITEs refused by the inbound authentication since start. */
unsigned long voiceagent_edge_auth_refused(void);

/* sizeof and _Alignof as gcc sees them when compiling with the flags of the PJSIP build. */
size_t voiceagent_sizeof(const char *type_name);
size_t voiceagent_alignof(const char *type_name);

#endif
