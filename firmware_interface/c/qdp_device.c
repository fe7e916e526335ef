/* The reference QDP/1 device. See qdp_device.h and ../PROTOCOL.md. */
#include "qdp_device.h"

#define DATA_HEADER 4u
#define STATUS_LEN 36u

size_t qdp_sample_bytes(const qdp_format *format, size_t n)
{
    if (format->packing == 1) {
        return n * (format->bits > 8 ? 2u : 1u);
    }
    return (n * format->bits + 7u) / 8u;
}

static void health_reset(qdp_health *h)
{
    h->rct_count = 0;
    h->apt_seen = 0;
}

/* Feeds one sample; returns 1 when the RCT fires, 2 when the APT fires, 0 otherwise. */
static int health_step(qdp_health *h, uint16_t v, uint16_t rct_cutoff, uint16_t apt_cutoff, uint16_t window)
{
    if (h->rct_count > 0 && v == h->rct_value) {
        if (++h->rct_count >= rct_cutoff) {
            return 1;
        }
    } else {
        h->rct_value = v;
        h->rct_count = 1;
    }
    if (h->apt_seen == 0) {
        h->apt_value = v;
        h->apt_count = 1;
    } else if (v == h->apt_value && ++h->apt_count >= apt_cutoff) {
        return 2;
    }
    if (++h->apt_seen == window) {
        h->apt_seen = 0;
    }
    return 0;
}

/* Sends a frame from `buf`, whose payload already sits at buf + 10. The sequence number is used
 * whether or not the port takes the frame. */
static bool send_frame(qdp_device *d, uint8_t *buf, size_t cap, uint8_t type, size_t len)
{
    size_t n = qdp_encode(buf, cap, type, d->seq++, buf + QDP_HEADER_LEN, len);
    return n > 0 && d->write(d->write_ctx, buf, n);
}

static size_t status_block(const qdp_device *d, uint8_t *p)
{
    size_t i;
    for (i = 0; i < STATUS_LEN; i++) {
        p[i] = 0;
    }
    p[0] = d->state;
    p[1] = d->flags;
    qdp_put64(p + 4, d->produced);
    qdp_put32(p + 12, d->frames_sent);
    qdp_put32(p + 16, d->dropped);
    qdp_put32(p + 20, d->rct_failures);
    qdp_put32(p + 24, d->apt_failures);
    qdp_put16(p + 28, d->cfg->rct_cutoff);
    qdp_put16(p + 30, d->cfg->apt_cutoff);
    qdp_put16(p + 32, d->cfg->apt_window);
    qdp_put16(p + 34, 0x8000u); /* temperature not measured */
    return STATUS_LEN;
}

void qdp_device_send_status(qdp_device *d)
{
    size_t len = status_block(d, d->reply + QDP_HEADER_LEN);
    (void)send_frame(d, d->reply, sizeof d->reply, QDP_TYPE_STATUS, len);
}

static void put_format(uint8_t *p, const qdp_format *f)
{
    p[0] = f->bits;
    p[1] = f->packing;
    p[2] = f->order;
    p[3] = 0;
    qdp_put32(p + 4, f->rate);
}

static size_t put_string(uint8_t *p, const char *s)
{
    size_t n = 0;
    while (s != NULL && s[n] != '\0' && n < 255) {
        p[1 + n] = (uint8_t)s[n];
        n++;
    }
    p[0] = (uint8_t)n;
    return 1 + n;
}

static size_t info_block(const qdp_device *d, uint8_t *p)
{
    size_t at = 16;
    p[0] = QDP_VERSION;
    p[1] = d->cfg->device_class;
    qdp_put16(p + 2, (uint16_t)(DATA_HEADER + QDP_DEVICE_MAX_SAMPLE_BYTES));
    put_format(p + 4, &d->format);
    qdp_put16(p + 12, d->cfg->claimed_entropy);
    qdp_put16(p + 14, 0);
    at += put_string(p + at, d->cfg->vendor);
    at += put_string(p + at, d->cfg->model);
    at += put_string(p + at, d->cfg->serial);
    at += put_string(p + at, d->cfg->firmware);
    return at;
}

static void clear_frame(qdp_device *d)
{
    size_t i;
    d->pending = 0;
    for (i = 0; i < QDP_DEVICE_MAX_SAMPLE_BYTES; i++) {
        d->tx[QDP_HEADER_LEN + DATA_HEADER + i] = 0;
    }
}

static void reset_counters(qdp_device *d)
{
    d->state = QDP_IDLE;
    d->flags = 0;
    d->produced = 0;
    d->frames_sent = 0;
    d->dropped = 0;
    d->rct_failures = 0;
    d->apt_failures = 0;
    d->overrun_since_last_frame = false;
    d->format = d->cfg->default_format;
    health_reset(&d->health);
    clear_frame(d);
}

void qdp_device_flush(qdp_device *d)
{
    uint8_t *p = d->tx + QDP_HEADER_LEN;
    size_t bytes;
    if (d->pending == 0) {
        return;
    }
    bytes = qdp_sample_bytes(&d->format, d->pending);
    qdp_put16(p, d->pending);
    p[2] = d->overrun_since_last_frame ? 2u : 0u;
    p[3] = 0;
    if (send_frame(d, d->tx, sizeof d->tx, QDP_TYPE_DATA, DATA_HEADER + bytes)) {
        d->frames_sent++;
        d->overrun_since_last_frame = false;
    } else {
        d->dropped += d->pending;
        d->flags |= 4u;
        d->overrun_since_last_frame = true;
    }
    clear_frame(d);
}

/* Writes sample number `d->pending` of the frame being filled. */
static void put_sample(qdp_device *d, uint16_t v)
{
    uint8_t *s = d->tx + QDP_HEADER_LEN + DATA_HEADER;
    const qdp_format *f = &d->format;
    size_t i = d->pending, k, bit;
    if (f->packing == 1) {
        if (f->bits > 8) {
            qdp_put16(s + 2 * i, v);
        } else {
            s[i] = (uint8_t)v;
        }
        return;
    }
    for (k = 0; k < f->bits; k++) {
        bit = i * f->bits + k;
        if (f->order == 0) {
            s[bit / 8] |= (uint8_t)(((v >> (f->bits - 1 - k)) & 1u) << (7 - bit % 8));
        } else {
            s[bit / 8] |= (uint8_t)(((v >> k) & 1u) << (bit % 8));
        }
    }
}

void qdp_device_push(qdp_device *d, const uint16_t *samples, size_t n)
{
    size_t i;
    int fired;
    for (i = 0; i < n && d->state == QDP_RUNNING; i++) {
        d->produced++;
        fired = health_step(&d->health, samples[i], d->cfg->rct_cutoff, d->cfg->apt_cutoff, d->cfg->apt_window);
        if (fired != 0) {
            /* The samples of the failing frame never leave the device. */
            clear_frame(d);
            d->state = QDP_FAILED_STATE;
            if (fired == 1) {
                d->rct_failures++;
                d->flags |= 1u;
            } else {
                d->apt_failures++;
                d->flags |= 2u;
            }
            qdp_device_send_status(d);
            return;
        }
        put_sample(d, samples[i]);
        if (++d->pending == d->cfg->samples_per_frame) {
            qdp_device_flush(d);
        }
    }
}

/* Known-answer tests; returns the failure bit mask of the SELF_TEST reply. */
static uint8_t self_test(const qdp_device *d)
{
    static const uint8_t check[9] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
    qdp_health h;
    uint8_t failed = 0;
    uint32_t i;
    int rct = 0, apt = 0;
    if (qdp_crc32c(0, check, sizeof check) != 0xE3069283u) {
        failed |= 1u;
    }
    health_reset(&h);
    for (i = 0; i < d->cfg->rct_cutoff && rct == 0; i++) {
        rct = health_step(&h, 5, d->cfg->rct_cutoff, 0xFFFFu, d->cfg->apt_window);
    }
    if (rct != 1) {
        failed |= 2u;
    }
    /* A value in every other sample: the APT must fire before the window ends. */
    health_reset(&h);
    for (i = 0; i < d->cfg->apt_window && apt == 0; i++) {
        apt = health_step(&h, (uint16_t)(i % 2 == 0 ? 7u : i), 0xFFFFu, d->cfg->apt_cutoff, d->cfg->apt_window);
    }
    if (apt != 2 && 2u * d->cfg->apt_cutoff <= d->cfg->apt_window + 1u) {
        failed |= 4u;
    }
    return failed;
}

static bool format_ok(const qdp_device *d, const uint8_t *p)
{
    qdp_format f;
    f.bits = p[0];
    f.packing = p[1];
    f.order = p[2];
    f.rate = qdp_get32(p + 4);
    if (f.bits < 1 || f.bits > 16 || f.packing > 1 || f.order > 1 || p[3] != 0) {
        return false;
    }
    if (qdp_sample_bytes(&f, d->cfg->samples_per_frame) > QDP_DEVICE_MAX_SAMPLE_BYTES) {
        return false;
    }
    return d->cfg->format_supported == NULL || d->cfg->format_supported(&f);
}

static void on_command(void *ctx, const qdp_frame *frame)
{
    qdp_device *d = (qdp_device *)ctx;
    uint8_t *out = d->reply + QDP_HEADER_LEN;
    uint8_t *data = out + 4;
    size_t len = 0;
    uint8_t result = QDP_OK;
    if (frame->type != QDP_TYPE_COMMAND || frame->len < 2) {
        return;
    }
    switch (frame->payload[0]) {
    case QDP_CMD_INFO:
        len = info_block(d, data);
        break;
    case QDP_CMD_START:
        if (d->state == QDP_FAILED_STATE) {
            result = QDP_NOT_NOW;
        } else {
            d->state = QDP_RUNNING;
        }
        break;
    case QDP_CMD_STOP:
        if (d->state == QDP_RUNNING) {
            qdp_device_flush(d);
            d->state = QDP_IDLE;
        }
        break;
    case QDP_CMD_CONFIGURE:
        if (d->state != QDP_IDLE) {
            result = QDP_NOT_NOW;
        } else if (frame->len < 10 || !format_ok(d, frame->payload + 2)) {
            result = QDP_BAD_ARGUMENT;
        } else {
            d->format.bits = frame->payload[2];
            d->format.packing = frame->payload[3];
            d->format.order = frame->payload[4];
            d->format.rate = qdp_get32(frame->payload + 6);
            clear_frame(d);
            put_format(data, &d->format);
            len = 8;
        }
        break;
    case QDP_CMD_STATUS:
        len = status_block(d, data);
        break;
    case QDP_CMD_SELF_TEST:
        data[0] = self_test(d);
        len = 1;
        result = data[0] == 0 ? QDP_OK : QDP_FAILED;
        break;
    case QDP_CMD_RESET:
        reset_counters(d);
        break;
    default:
        result = QDP_UNKNOWN_COMMAND;
        break;
    }
    /* The reply is built after the command ran: a DATA frame flushed by STOP used d->tx, not
     * d->reply, so `out` is intact. */
    out[0] = frame->payload[0];
    out[1] = frame->payload[1];
    out[2] = result;
    out[3] = 0;
    (void)send_frame(d, d->reply, sizeof d->reply, QDP_TYPE_REPLY, 4 + len);
}

void qdp_device_receive(qdp_device *d, const uint8_t *data, size_t len)
{
    qdp_rx_feed(&d->rx, data, len, on_command, d);
}

void qdp_device_init(qdp_device *d, const qdp_config *cfg, qdp_write_fn write, void *write_ctx)
{
    d->cfg = cfg;
    d->write = write;
    d->write_ctx = write_ctx;
    d->seq = 0;
    qdp_rx_init(&d->rx);
    reset_counters(d);
}
