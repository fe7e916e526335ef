/* QDP/1 framing for devices. See qdp.h and ../PROTOCOL.md. */
#include "qdp.h"

#ifdef QDP_CRC_TABLE
/* A 1 KiB table, filled on first use: eight times faster, for parts that have the memory. */
static uint32_t crc_table[256];
static bool crc_table_ready = false;

static void crc_table_fill(void)
{
    uint32_t i, c;
    int k;
    for (i = 0; i < 256; i++) {
        c = i;
        for (k = 0; k < 8; k++) {
            c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc_table[i] = c;
    }
    crc_table_ready = true;
}
#endif

uint32_t qdp_crc32c(uint32_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    crc = ~crc;
#ifdef QDP_CRC_TABLE
    if (!crc_table_ready) {
        crc_table_fill();
    }
    for (i = 0; i < len; i++) {
        crc = (crc >> 8) ^ crc_table[(crc ^ data[i]) & 0xFFu];
    }
#else
    /* Bit at a time: small and table-free for the smallest parts; a device with a hardware CRC
     * unit should use that instead, one with 1 KiB to spare can define QDP_CRC_TABLE. */
    int k;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        for (k = 0; k < 8; k++) {
            crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
    }
#endif
    return ~crc;
}

void qdp_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void qdp_put32(uint8_t *p, uint32_t v)
{
    qdp_put16(p, (uint16_t)v);
    qdp_put16(p + 2, (uint16_t)(v >> 16));
}

void qdp_put64(uint8_t *p, uint64_t v)
{
    qdp_put32(p, (uint32_t)v);
    qdp_put32(p + 4, (uint32_t)(v >> 32));
}

uint16_t qdp_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t qdp_get32(const uint8_t *p)
{
    return (uint32_t)qdp_get16(p) | ((uint32_t)qdp_get16(p + 2) << 16);
}

size_t qdp_encode(uint8_t *out, size_t cap, uint8_t type, uint32_t seq, const uint8_t *payload, size_t len)
{
    size_t i;
    uint32_t crc;
    if (len > QDP_MAX_PAYLOAD || cap < QDP_OVERHEAD + len) {
        return 0;
    }
    out[0] = QDP_MAGIC0;
    out[1] = QDP_MAGIC1;
    out[2] = QDP_VERSION;
    out[3] = type;
    qdp_put32(out + 4, seq);
    qdp_put16(out + 8, (uint16_t)len);
    /* The payload may already sit in place (out + 10): copy only when it does not. */
    if (payload != out + QDP_HEADER_LEN) {
        for (i = 0; i < len; i++) {
            out[QDP_HEADER_LEN + i] = payload[i];
        }
    }
    crc = qdp_crc32c(0, out + 2, QDP_HEADER_LEN - 2 + len);
    qdp_put32(out + QDP_HEADER_LEN + len, crc);
    return QDP_OVERHEAD + len;
}

void qdp_rx_init(qdp_rx *rx)
{
    rx->fill = 0;
    rx->crc_errors = 0;
    rx->garbage_bytes = 0;
}

/* Removes the first `count` bytes of the window. */
static void qdp_rx_drop(qdp_rx *rx, size_t count)
{
    size_t i;
    for (i = count; i < rx->fill; i++) {
        rx->buf[i - count] = rx->buf[i];
    }
    rx->fill -= count;
}

/* Discards the window's first byte and any that follow up to the next magic byte. */
static void qdp_rx_skip(qdp_rx *rx)
{
    size_t next = 1;
    while (next < rx->fill && rx->buf[next] != QDP_MAGIC0) {
        next++;
    }
    rx->garbage_bytes += (uint32_t)next;
    qdp_rx_drop(rx, next);
}

/* The length of the complete valid frame at the window's start (> 0), 0 when more bytes could
 * make one, -1 when there is none, -2 when one fails its CRC. */
static long qdp_rx_check(const qdp_rx *rx)
{
    size_t len;
    uint32_t crc;
    if (rx->fill < 1) {
        return 0;
    }
    if (rx->buf[0] != QDP_MAGIC0 || (rx->fill >= 2 && rx->buf[1] != QDP_MAGIC1)) {
        return -1;
    }
    if (rx->fill < QDP_HEADER_LEN) {
        return 0;
    }
    len = qdp_get16(rx->buf + 8);
    if (len > QDP_RX_MAX_PAYLOAD) {
        return -1;
    }
    if (rx->fill < QDP_OVERHEAD + len) {
        return 0;
    }
    crc = qdp_crc32c(0, rx->buf + 2, QDP_HEADER_LEN - 2 + len);
    return crc == qdp_get32(rx->buf + QDP_HEADER_LEN + len) ? (long)(QDP_OVERHEAD + len) : -2;
}

void qdp_rx_feed(qdp_rx *rx, const uint8_t *data, size_t len, qdp_frame_handler handler, void *ctx)
{
    size_t i;
    long state;
    qdp_frame frame;
    for (i = 0; i < len; i++) {
        if (rx->fill == sizeof rx->buf) {
            qdp_rx_skip(rx);
        }
        rx->buf[rx->fill++] = data[i];
        for (;;) {
            state = qdp_rx_check(rx);
            if (state == 0) {
                break;
            }
            if (state < 0) {
                rx->crc_errors += state == -2 ? 1u : 0u;
                qdp_rx_skip(rx);
                continue;
            }
            if (rx->buf[2] == QDP_VERSION) {
                frame.type = rx->buf[3];
                frame.seq = qdp_get32(rx->buf + 4);
                frame.len = qdp_get16(rx->buf + 8);
                frame.payload = rx->buf + QDP_HEADER_LEN;
                handler(ctx, &frame);
            }
            qdp_rx_drop(rx, (size_t)state);
        }
    }
}
