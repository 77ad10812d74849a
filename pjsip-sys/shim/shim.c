#include "shim.h"

#include <string.h>

#include <pjmedia-codec/opus.h>

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
