/* What pjsip-sys binds: pjsua-lib (which pulls in pjsip, pjmedia and pjlib), the media port and
 * conference bridge, codec parameters and Opus configuration. */
#include <pjlib.h>
#include <pjsua-lib/pjsua.h>
#include <pjmedia/port.h>
#include <pjmedia/conference.h>
#include <pjmedia/codec.h>
#include <pjmedia-codec/opus.h>

#include "shim/shim.h"
