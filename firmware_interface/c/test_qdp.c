/* Host-side tests of the C reference against golden_vectors.txt (the test suite compiles and
 * runs this with gcc). Usage: test_qdp PATH/golden_vectors.txt */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qdp.h"
#include "qdp_device.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                                            \
    do {                                                                                            \
        checks++;                                                                                   \
        if (!(cond)) {                                                                              \
            failures++;                                                                             \
            fprintf(stderr, "FAIL line %d: ", __LINE__);                                            \
            fprintf(stderr, __VA_ARGS__);                                                           \
            fprintf(stderr, "\n");                                                                  \
        }                                                                                           \
    } while (0)

/* Decodes hex (or "-" for empty) into out; returns the length. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    unsigned v;
    if (strcmp(s, "-") == 0) {
        return 0;
    }
    while (s[0] && s[1] && n < cap && sscanf(s, "%2x", &v) == 1) {
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

/* Everything the device transmits lands here. */
static uint8_t captured[65536];
static size_t captured_len = 0;

static bool capture(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    if (captured_len + len > sizeof captured) {
        return false;
    }
    memcpy(captured + captured_len, data, len);
    captured_len += len;
    return true;
}

typedef struct {
    int frames;
    qdp_frame last;
    uint8_t payload[QDP_RX_MAX_PAYLOAD];
} rx_result;

static void collect(void *ctx, const qdp_frame *f)
{
    rx_result *r = (rx_result *)ctx;
    r->frames++;
    r->last = *f;
    memcpy(r->payload, f->payload, f->len);
}

static long field(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static const qdp_config reference = {
    1, {8, 1, 0, 1000000}, 7 * 256, 4, 18, 512, 1024, "qitcore", "QDP reference", "REF-0001", "1.0.0", NULL,
};

static qdp_device device;

static void check_frame(char *name, char *type_s, char *seq_s, char *payload_s, char *frame_s)
{
    static uint8_t payload[QDP_MAX_PAYLOAD], frame[QDP_MAX_PAYLOAD + QDP_OVERHEAD], out[QDP_MAX_PAYLOAD + QDP_OVERHEAD];
    size_t plen = unhex(payload_s, payload, sizeof payload);
    size_t flen = unhex(frame_s, frame, sizeof frame);
    uint8_t type = (uint8_t)strtoul(type_s, NULL, 16);
    uint32_t seq = (uint32_t)strtoul(seq_s, NULL, 16);
    size_t n = qdp_encode(out, sizeof out, type, seq, payload, plen);
    qdp_rx rx;
    rx_result r;
    CHECK(n == flen && memcmp(out, frame, n) == 0, "frame %s: encoding differs", name);
    if (plen <= QDP_RX_MAX_PAYLOAD) {
        qdp_rx_init(&rx);
        memset(&r, 0, sizeof r);
        qdp_rx_feed(&rx, frame, flen, collect, &r);
        CHECK(r.frames == 1 && r.last.type == type && r.last.seq == seq && r.last.len == plen &&
                  memcmp(r.payload, payload, plen) == 0,
              "frame %s: decoding differs", name);
    }
}

static void check_stream(char *name, char *bytes_s, char *rest)
{
    static uint8_t bytes[65536];
    size_t n = unhex(bytes_s, bytes, sizeof bytes);
    qdp_rx rx;
    rx_result r;
    size_t i;
    /* Frames here carry at most 16 payload bytes, so the device receiver holds them. */
    qdp_rx_init(&rx);
    memset(&r, 0, sizeof r);
    for (i = 0; i < n; i++) { /* byte by byte, as a UART delivers them */
        qdp_rx_feed(&rx, bytes + i, 1, collect, &r);
    }
    CHECK(r.frames == field(rest, "frames="), "stream %s: %d frames", name, r.frames);
    CHECK((long)rx.crc_errors == field(rest, "crc_errors="), "stream %s: %u CRC errors", name, rx.crc_errors);
    CHECK((long)rx.garbage_bytes == field(rest, "garbage="), "stream %s: %u garbage bytes", name, rx.garbage_bytes);
}

static void check_session(char *name, char *action, char *input, char *expect_s)
{
    static uint8_t in[4096], expect[4096];
    static uint16_t samples[4096];
    size_t n = unhex(input, in, sizeof in), m = unhex(expect_s, expect, sizeof expect), i;
    captured_len = 0;
    if (strcmp(action, "send") == 0) {
        qdp_device_receive(&device, in, n);
    } else {
        for (i = 0; i < n; i++) {
            samples[i] = in[i];
        }
        qdp_device_push(&device, samples, n);
        qdp_device_flush(&device);
    }
    CHECK(captured_len == m && memcmp(captured, expect, m) == 0, "session %s: device sent %zu bytes, expected %zu",
          name, captured_len, m);
}

int main(int argc, char **argv)
{
    static char line[65536 * 2 + 256];
    FILE *f;
    char *tok[8];
    int k;
    if (argc != 2 || (f = fopen(argv[1], "r")) == NULL) {
        fprintf(stderr, "usage: test_qdp golden_vectors.txt\n");
        return 2;
    }
    qdp_device_init(&device, &reference, capture, NULL);
    while (fgets(line, sizeof line, f)) {
        char *rest;
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }
        rest = line;
        for (k = 0; k < 8; k++) {
            tok[k] = strtok(k == 0 ? rest : NULL, " ");
        }
        if (strcmp(tok[0], "crc") == 0) {
            static uint8_t data[256];
            size_t n = unhex(tok[1], data, sizeof data);
            uint32_t want = (uint32_t)strtoul(tok[2], NULL, 16);
            CHECK(qdp_crc32c(0, data, n) == want, "crc of %s", tok[1]);
        } else if (strcmp(tok[0], "frame") == 0) {
            check_frame(tok[1], tok[2], tok[3], tok[4], tok[5]);
        } else if (strcmp(tok[0], "stream") == 0) {
            /* strtok cut the key=value list: rebuild it from the remaining tokens. */
            static char kv[512];
            kv[0] = '\0';
            for (k = 3; k < 8 && tok[k]; k++) {
                strcat(kv, tok[k]);
                strcat(kv, " ");
            }
            check_stream(tok[1], tok[2], kv);
        } else if (strcmp(tok[0], "session") == 0) {
            check_session(tok[1], tok[2], tok[3], tok[5]);
        } else {
            CHECK(0, "unknown vector kind %s", tok[0]);
        }
    }
    fclose(f);
    printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 && checks > 20 ? 0 : 1;
}
