/* The reference QDP/1 device: command handling, sample framing and the device's own health
 * tests. Portable C99 with static storage only; the platform supplies a transmit function and
 * pushes samples from its source. See ../PROTOCOL.md. */
#ifndef QDP_DEVICE_H
#define QDP_DEVICE_H

#include "qdp.h"

/* Room for the sample bytes of one DATA frame. */
#ifndef QDP_DEVICE_MAX_SAMPLE_BYTES
#define QDP_DEVICE_MAX_SAMPLE_BYTES 4096u
#endif

enum { QDP_CMD_INFO = 1, QDP_CMD_START, QDP_CMD_STOP, QDP_CMD_CONFIGURE, QDP_CMD_STATUS, QDP_CMD_SELF_TEST, QDP_CMD_RESET };
enum { QDP_OK = 0, QDP_UNKNOWN_COMMAND, QDP_BAD_ARGUMENT, QDP_NOT_NOW, QDP_FAILED };
enum { QDP_IDLE = 0, QDP_RUNNING, QDP_FAILED_STATE, QDP_ERROR_STATE };

typedef struct {
    uint8_t bits;    /* 1..16 */
    uint8_t packing; /* 0 packed, 1 aligned */
    uint8_t order;   /* 0 MSB first, 1 LSB first */
    uint32_t rate;   /* samples per second */
} qdp_format;

/* Sends `len` bytes; returns false when there is no room (the frame is then dropped). */
typedef bool (*qdp_write_fn)(void *ctx, const uint8_t *data, size_t len);

typedef struct {
    uint8_t device_class;
    qdp_format default_format;
    uint16_t claimed_entropy; /* 1/256 bit per sample */
    uint16_t rct_cutoff;
    uint16_t apt_cutoff;
    uint16_t apt_window;
    uint16_t samples_per_frame;
    const char *vendor;
    const char *model;
    const char *serial;
    const char *firmware;
    /* Optional: whether the hardware can produce a format; NULL accepts any valid one. */
    bool (*format_supported)(const qdp_format *format);
} qdp_config;

/* Repetition Count and Adaptive Proportion test state. */
typedef struct {
    uint16_t rct_value, rct_count;
    uint16_t apt_value, apt_count, apt_seen;
} qdp_health;

typedef struct {
    const qdp_config *cfg;
    qdp_write_fn write;
    void *write_ctx;
    qdp_rx rx;
    qdp_format format;
    uint8_t state;
    uint8_t flags;
    uint32_t seq;
    uint64_t produced;
    uint32_t frames_sent, dropped, rct_failures, apt_failures;
    qdp_health health;
    bool overrun_since_last_frame;
    uint16_t pending; /* samples in the frame being filled */
    uint8_t tx[QDP_OVERHEAD + 4 + QDP_DEVICE_MAX_SAMPLE_BYTES];
    uint8_t reply[QDP_OVERHEAD + 4 + 16 + 4 * 256];
} qdp_device;

void qdp_device_init(qdp_device *d, const qdp_config *cfg, qdp_write_fn write, void *write_ctx);
/* Bytes from the host. */
void qdp_device_receive(qdp_device *d, const uint8_t *data, size_t len);
/* Samples from the source (each below 2^bits); ignored unless running. */
void qdp_device_push(qdp_device *d, const uint16_t *samples, size_t n);
/* Sends the partly filled DATA frame, if any. */
void qdp_device_flush(qdp_device *d);
/* Sends a STATUS frame (call at least once a second while running). */
void qdp_device_send_status(qdp_device *d);
/* Payload bytes of `n` samples in `format`. */
size_t qdp_sample_bytes(const qdp_format *format, size_t n);

#endif
