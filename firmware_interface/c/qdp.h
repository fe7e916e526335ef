/* QDP/1 framing for devices: CRC-32C, frame encoding, and a resynchronising receiver for the
 * commands a device gets. Portable C99: no allocation, no host headers, only <stdint.h>,
 * <stddef.h> and <stdbool.h> (all available freestanding). See ../PROTOCOL.md. */
#ifndef QDP_H
#define QDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QDP_MAGIC0 0xA5u
#define QDP_MAGIC1 0x51u
#define QDP_VERSION 1u
#define QDP_HEADER_LEN 10u
#define QDP_OVERHEAD 14u
#define QDP_MAX_PAYLOAD 8192u

#define QDP_TYPE_DATA 0x01u
#define QDP_TYPE_STATUS 0x02u
#define QDP_TYPE_REPLY 0x03u
#define QDP_TYPE_COMMAND 0x81u

/* The largest frame this receiver holds: commands are short, so a device need not buffer more.
 * Longer candidate frames are treated as invalid (PROTOCOL.md §1.4 lets a device do so). */
#ifndef QDP_RX_MAX_PAYLOAD
#define QDP_RX_MAX_PAYLOAD 64u
#endif

/* CRC-32C of `len` bytes, continuing from `crc` (start with 0). */
uint32_t qdp_crc32c(uint32_t crc, const uint8_t *data, size_t len);

/* Writes the frame (type, seq, payload) to `out`, which has room for `cap` bytes. Returns the
 * frame's length, or 0 when it does not fit or the payload is too long. */
size_t qdp_encode(uint8_t *out, size_t cap, uint8_t type, uint32_t seq, const uint8_t *payload, size_t len);

/* A received frame, valid during the call that reports it. */
typedef struct {
    uint8_t type;
    uint32_t seq;
    const uint8_t *payload;
    uint16_t len;
} qdp_frame;

typedef void (*qdp_frame_handler)(void *ctx, const qdp_frame *frame);

/* The receiver: a window of bytes scanned for valid frames. */
typedef struct {
    uint8_t buf[QDP_OVERHEAD + QDP_RX_MAX_PAYLOAD];
    size_t fill;
    uint32_t crc_errors;
    uint32_t garbage_bytes;
} qdp_rx;

void qdp_rx_init(qdp_rx *rx);

/* Feeds `len` bytes, calling `handler` for each valid frame of this version they complete. */
void qdp_rx_feed(qdp_rx *rx, const uint8_t *data, size_t len, qdp_frame_handler handler, void *ctx);

/* Little-endian helpers. */
void qdp_put16(uint8_t *p, uint16_t v);
void qdp_put32(uint8_t *p, uint32_t v);
void qdp_put64(uint8_t *p, uint64_t v);
uint16_t qdp_get16(const uint8_t *p);
uint32_t qdp_get32(const uint8_t *p);

#endif
