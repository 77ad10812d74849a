#include "shim.h"

#include <string.h>

#include <pjmedia-codec/opus.h>
#include <pjsip/sip_tel_uri.h>

unsigned voiceagent_port_spf(const pjmedia_port *port)
{
    return PJMEDIA_PIA_SPF(&port->info);
}

unsigned voiceagent_port_srate(const pjmedia_port *port)
{
    return PJMEDIA_PIA_SRATE(&port->info);
}

const char *voiceagent_pj_version(void)
{
    return PJ_VERSION;
}

pj_status_t voiceagent_schedule_timer(void (*cb)(void *user_data), void *user_data, unsigned msec)
{
    return pjsua_schedule_timer2(cb, user_data, msec);
}

void voiceagent_call_setting_audio_only(pjsua_call_setting *opt)
{
    opt->aud_cnt = 1;
    opt->vid_cnt = 0;
#if PJ_VERSION_NUM >= ((2 << 24) | (16 << 16))
    opt->txt_cnt = 0;
#endif
}

static int uri_number(const pjsip_uri *uri, char *buf, size_t len)
{
    const pj_str_t *number = NULL;
    if (!uri)
        return -1;
    uri = (const pjsip_uri *)pjsip_uri_get_uri((pjsip_uri *)uri);
    if (PJSIP_URI_SCHEME_IS_SIP(uri) || PJSIP_URI_SCHEME_IS_SIPS(uri))
        number = &((const pjsip_sip_uri *)uri)->user;
    else if (PJSIP_URI_SCHEME_IS_TEL(uri))
        number = &((const pjsip_tel_uri *)uri)->number;
    if (!number || number->slen <= 0 || len == 0)
        return -1;
    size_t n = (size_t)number->slen < len - 1 ? (size_t)number->slen : len - 1;
    memcpy(buf, number->ptr, n);
    buf[n] = 0;
    return (int)n;
}

int voiceagent_rdata_caller(const pjsip_rx_data *rdata, int use_pai, char *buf, size_t len)
{
    if (!rdata || !rdata->msg_info.msg)
        return -1;
    if (use_pai) {
        static const pj_str_t pai_name = { "P-Asserted-Identity", 19 };
        const pjsip_generic_string_hdr *pai = (const pjsip_generic_string_hdr *)
            pjsip_msg_find_hdr_by_name(rdata->msg_info.msg, &pai_name, NULL);
        if (pai && pai->hvalue.slen > 0 && pai->hvalue.slen < 512) {
            /* The header is kept unparsed; parse a copy (the parser wants a NUL-terminated,
             * writable buffer) with the packet's own pool. */
            char tmp[512];
            memcpy(tmp, pai->hvalue.ptr, (size_t)pai->hvalue.slen);
            tmp[pai->hvalue.slen] = 0;
            pjsip_uri *uri = pjsip_parse_uri(rdata->tp_info.pool, tmp, (pj_size_t)pai->hvalue.slen,
                                             PJSIP_PARSE_URI_AS_NAMEADDR);
            return uri_number(uri, buf, len);
        }
        return -1;
    }
    if (!rdata->msg_info.from)
        return -1;
    return uri_number(rdata->msg_info.from->uri, buf, len);
}

static voiceagent_edge_decide edge_decide;

static pj_pool_t *auth_pool;
static pjsip_auth_srv auth_srv;
static int auth_on;
static pj_str_t auth_user, auth_pass;
static unsigned long auth_refused;

static pj_status_t auth_lookup(pj_pool_t *pool, const pj_str_t *realm, const pj_str_t *acc_name,
                               pjsip_cred_info *cred)
{
    PJ_UNUSED_ARG(pool);
    if (pj_strcmp(acc_name, &auth_user) != 0)
        return PJSIP_EAUTHACCNOTFOUND;
    pj_bzero(cred, sizeof(*cred));
    cred->realm = *realm;
    cred->username = auth_user;
    cred->data_type = PJSIP_CRED_DATA_PLAIN_PASSWD;
    cred->data = auth_pass;
    return PJ_SUCCESS;
}

pj_status_t voiceagent_edge_inbound_auth(const char *realm, const char *user, const char *password)
{
    pj_str_t r;
    auth_on = 0;
    if (!user)
        return PJ_SUCCESS;
    if (!auth_pool)
        auth_pool = pjsua_pool_create("va-auth", 512, 512);
    if (!auth_pool)
        return PJ_ENOMEM;
    pj_strdup2_with_null(auth_pool, &auth_user, user);
    pj_strdup2_with_null(auth_pool, &auth_pass, password ? password : "");
    pj_strdup2_with_null(auth_pool, &r, realm);
    pj_status_t status = pjsip_auth_srv_init(auth_pool, &auth_srv, &r, &auth_lookup, 0);
    if (status == PJ_SUCCESS)
        auth_on = 1;
    return status;
}

unsigned long voiceagent_edge_auth_refused(void)
{
    return __atomic_load_n(&auth_refused, __ATOMIC_RELAXED);
}

/* 1 when `rdata` is a new INVITE that fails the inbound authentication (and was answered). */
static int edge_challenge(pjsip_endpoint *endpt, pjsip_rx_data *rdata)
{
    int code = 0;
    pjsip_tx_data *tdata;
    if (!auth_on || rdata->msg_info.msg->line.req.method.id != PJSIP_INVITE_METHOD
        || (rdata->msg_info.to && rdata->msg_info.to->tag.slen > 0))
        return 0;
    if (pjsip_auth_srv_verify(&auth_srv, rdata, &code) == PJ_SUCCESS)
        return 0;
    __atomic_fetch_add(&auth_refused, 1, __ATOMIC_RELAXED);
    /* `code` says why (401 without or with bad credentials, 403 for an unknown user); the
     * answer is a challenge either way, so it tells a scanner nothing. */
    if (pjsip_endpt_create_response(endpt, rdata, PJSIP_SC_UNAUTHORIZED, NULL, &tdata) != PJ_SUCCESS)
        return 1;
    if (pjsip_auth_srv_challenge(&auth_srv, NULL, NULL, NULL, PJ_FALSE, tdata) != PJ_SUCCESS) {
        pjsip_tx_data_dec_ref(tdata);
        return 1;
    }
    if (pjsip_endpt_send_response2(endpt, rdata, tdata, NULL, NULL) != PJ_SUCCESS)
        pjsip_tx_data_dec_ref(tdata);
    return 1;
}

static pj_bool_t edge_on_rx_request(pjsip_rx_data *rdata)
{
    pjsip_endpoint *endpt = pjsua_get_pjsip_endpt();
    pjsip_tx_data *tdata;
    int code;

    if (!edge_decide || !rdata->msg_info.msg)
        return PJ_FALSE;
    code = edge_decide(&rdata->msg_info.msg->line.req.method.name, rdata);
    if (code < 300)
        return edge_challenge(endpt, rdata) ? PJ_TRUE : PJ_FALSE;
    /* Never answer an ACK (it has no response); swallowing it is the refusal. */
    if (rdata->msg_info.msg->line.req.method.id == PJSIP_ACK_METHOD)
        return PJ_TRUE;
    if (pjsip_endpt_create_response(endpt, rdata, code, NULL, &tdata) != PJ_SUCCESS)
        return PJ_TRUE;
    if (code == PJSIP_SC_METHOD_NOT_ALLOWED) {
        const pjsip_hdr *allow = pjsip_endpt_get_capability(endpt, PJSIP_H_ALLOW, NULL);
        if (allow)
            pjsip_msg_add_hdr(tdata->msg, (pjsip_hdr *)pjsip_hdr_clone(tdata->pool, allow));
    }
    if (pjsip_endpt_send_response2(endpt, rdata, tdata, NULL, NULL) != PJ_SUCCESS)
        pjsip_tx_data_dec_ref(tdata);
    return PJ_TRUE;
}

static pjsip_module edge_module = {
    NULL, NULL,                            /* prev, next */
    { "mod-voiceagent-edge", 19 },         /* name */
    -1,                                    /* id */
    PJSIP_MOD_PRIORITY_TSX_LAYER - 1,      /* before transactions and dialogs */
    NULL, NULL, NULL, NULL,                /* load, start, stop, unload */
    &edge_on_rx_request,                   /* on_rx_request */
    NULL, NULL, NULL, NULL,                /* on_rx_response, on_tx_request, on_tx_response, on_tsx_state */
};

pj_status_t voiceagent_edge_register(pjsip_endpoint *endpt, voiceagent_edge_decide decide)
{
    edge_decide = decide;
    auth_on = 0;
    auth_pool = NULL; /* the previous endpoint's pools are gone with it */
    /* A new endpoint (an engine restarted in the same process) starts without modules. */
    edge_module.id = -1;
    edge_module.prev = edge_module.next = NULL;
    return pjsip_endpt_register_module(endpt, &edge_module);
}

#define LAYOUT(T) { #T, sizeof(T), _Alignof(T) }

static const struct {
    const char *name;
    size_t size;
    size_t align;
} layouts[] = {
    LAYOUT(pjsua_config),
    LAYOUT(pjsua_media_config),
    LAYOUT(pjsua_acc_config),
    LAYOUT(pjsua_transport_config),
    LAYOUT(pjsua_logging_config),
    LAYOUT(pjsua_call_info),
    LAYOUT(pjsua_call_setting),
    LAYOUT(pjsua_stream_stat),
    LAYOUT(pjsua_codec_info),
    LAYOUT(pjsua_callback),
    LAYOUT(pjmedia_port),
    LAYOUT(pjmedia_port_info),
    LAYOUT(pjmedia_frame),
    LAYOUT(pjmedia_codec_param),
    LAYOUT(pjmedia_codec_opus_config),
    LAYOUT(pjsip_cred_info),
    LAYOUT(pj_str_t),
    LAYOUT(pj_thread_desc),
};

static int find(const char *type_name)
{
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
        if (strcmp(layouts[i].name, type_name) == 0)
            return (int)i;
    }
    return -1;
}

size_t voiceagent_sizeof(const char *type_name)
{
    int i = find(type_name);
    return i < 0 ? 0 : layouts[i].size;
}

size_t voiceagent_alignof(const char *type_name)
{
    int i = find(type_name);
    return i < 0 ? 0 : layouts[i].align;
}
