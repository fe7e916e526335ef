/* The reference firmware compiled for the host, on a pseudo-terminal: the loopback simulator's
 * device half. It creates a pty, prints the slave's path on stdout, and then behaves as a QDP/1
 * device on the master side: commands in, frames out. Samples come from stdin (one byte each up
 * to 8 bits, two little-endian bytes above), read only while the device runs, so a feeder that
 * writes ahead is paced by the device. Link faults can be injected on the way out.
 *
 * POSIX host code (not part of the device reference, which is qdp.c and qdp_device.c).
 *
 * usage: host_pty [--bits B] [--rate R] [--entropy H] [--rct C] [--apt C] [--window W]
 *                 [--frame N] [--drop P] [--corrupt P] [--garbage P] [--disconnect-after BYTES]
 *                 [--seed S]
 */
#define _XOPEN_SOURCE 600
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "qdp_device.h"

#define RING (1u << 20)

static uint8_t ring[RING];
static size_t ring_head = 0, ring_len = 0;
static double p_drop = 0, p_corrupt = 0, p_garbage = 0;
static unsigned long long disconnect_after = 0, bytes_out = 0;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t next_random(void)
{
    /* xorshift64*: faults need no more. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static int chance(double p)
{
    return p > 0 && (double)(next_random() >> 11) / 9007199254740992.0 < p;
}

static void ring_put(const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        ring[(ring_head + ring_len + i) % RING] = data[i];
    }
    ring_len += len;
}

/* The device's transmit function: a frame goes whole into the ring, or is dropped when there is
 * no room (the device never blocks on the host). */
static bool transmit(void *ctx, const uint8_t *data, size_t len)
{
    static uint8_t copy[QDP_OVERHEAD + 4 + QDP_DEVICE_MAX_SAMPLE_BYTES + 64];
    size_t i, garbage = 0;
    (void)ctx;
    if (chance(p_garbage)) {
        garbage = 1 + next_random() % 64;
    }
    if (ring_len + len + garbage > RING) {
        return false;
    }
    for (i = 0; i < garbage; i++) {
        copy[i] = (uint8_t)next_random();
    }
    ring_put(copy, garbage);
    if (chance(p_drop)) {
        return true; /* lost on the link: the device believes it sent it */
    }
    for (i = 0; i < len; i++) {
        copy[i] = data[i];
        if (chance(p_corrupt)) {
            copy[i] ^= (uint8_t)(1u << (next_random() % 8));
        }
    }
    ring_put(copy, len);
    return true;
}

static const char *arg(int argc, char **argv, const char *name, const char *fallback)
{
    int i;
    for (i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return fallback;
}

int main(int argc, char **argv)
{
    static qdp_config cfg;
    static qdp_device dev;
    static uint8_t in[65536];
    static uint16_t samples[65536];
    struct termios raw;
    struct pollfd fds[2];
    int master, slave, bits, stdin_open = 1;
    size_t per_sample, carry = 0;

    bits = atoi(arg(argc, argv, "--bits", "8"));
    cfg.device_class = 1;
    cfg.default_format.bits = (uint8_t)bits;
    cfg.default_format.packing = bits == 1 ? 0 : 1;
    cfg.default_format.order = 0;
    cfg.default_format.rate = (uint32_t)atof(arg(argc, argv, "--rate", "0"));
    cfg.claimed_entropy = (uint16_t)(atof(arg(argc, argv, "--entropy", "0")) * 256.0);
    cfg.rct_cutoff = (uint16_t)atoi(arg(argc, argv, "--rct", "41"));
    cfg.apt_cutoff = (uint16_t)atoi(arg(argc, argv, "--apt", "410"));
    cfg.apt_window = (uint16_t)atoi(arg(argc, argv, "--window", "512"));
    cfg.samples_per_frame = (uint16_t)atoi(arg(argc, argv, "--frame", "1024"));
    cfg.vendor = "qitcore";
    cfg.model = "QDP reference on a pty";
    cfg.serial = "PTY-0001";
    cfg.firmware = "1.0.0";
    p_drop = atof(arg(argc, argv, "--drop", "0"));
    p_corrupt = atof(arg(argc, argv, "--corrupt", "0"));
    p_garbage = atof(arg(argc, argv, "--garbage", "0"));
    disconnect_after = strtoull(arg(argc, argv, "--disconnect-after", "0"), NULL, 10);
    rng_state ^= strtoull(arg(argc, argv, "--seed", "1"), NULL, 10) * 0xD1B54A32D192ED03ull;
    per_sample = bits > 8 ? 2 : 1;

    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        perror("host_pty: pty");
        return 1;
    }
    /* Hold the slave open in raw mode, so that nothing is translated and the master never sees
     * a hang-up before the host opens it. */
    slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    if (slave < 0 || tcgetattr(slave, &raw) != 0) {
        perror("host_pty: slave");
        return 1;
    }
    cfmakeraw(&raw);
    tcsetattr(slave, TCSANOW, &raw);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    printf("%s\n", ptsname(master));
    fflush(stdout);

    qdp_device_init(&dev, &cfg, transmit, NULL);
    for (;;) {
        static struct timespec last_status;
        struct timespec now;
        int n_fds = 1;
        ssize_t n;
        fds[0].fd = master;
        fds[0].events = POLLIN | (ring_len > 0 ? POLLOUT : 0);
        /* Take samples only while running and with room for a frame's worth of output. */
        if (stdin_open && dev.state == QDP_RUNNING && ring_len + 2 * sizeof dev.tx < RING) {
            fds[1].fd = 0;
            fds[1].events = POLLIN;
            n_fds = 2;
        }
        if (poll(fds, (nfds_t)n_fds, 100) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        /* A STATUS frame at least once a second while running (PROTOCOL.md §4). */
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (dev.state == QDP_RUNNING && now.tv_sec > last_status.tv_sec) {
            qdp_device_send_status(&dev);
            last_status = now;
        }
        if (fds[0].revents & POLLIN) {
            n = read(master, in, sizeof in);
            if (n > 0) {
                qdp_device_receive(&dev, in, (size_t)n);
            }
        }
        while (ring_len > 0) {
            size_t chunk = ring_len, head_room = RING - ring_head;
            if (chunk > head_room) {
                chunk = head_room;
            }
            if (disconnect_after > 0 && bytes_out + chunk > disconnect_after) {
                chunk = (size_t)(disconnect_after - bytes_out);
            }
            n = chunk > 0 ? write(master, ring + ring_head, chunk) : 0;
            if (n <= 0) {
                break;
            }
            ring_head = (ring_head + (size_t)n) % RING;
            ring_len -= (size_t)n;
            bytes_out += (unsigned long long)n;
            if (disconnect_after > 0 && bytes_out >= disconnect_after) {
                /* The link goes down: both ends of the pty close. */
                tcdrain(master);
                close(slave);
                close(master);
                return 0;
            }
        }
        if (n_fds == 2 && (fds[1].revents & (POLLIN | POLLHUP))) {
            size_t i, count, room = (RING - ring_len) / 2, want = sizeof in - carry;
            /* No more samples than their frames can fit in the ring: the device drops only
             * what the link faults drop. */
            if (want > room) {
                want = room;
            }
            n = read(0, in + carry, want);
            if (n <= 0) {
                stdin_open = 0; /* the feeder stopped: the device goes quiet */
                qdp_device_flush(&dev);
                continue;
            }
            carry += (size_t)n;
            count = carry / per_sample;
            for (i = 0; i < count; i++) {
                samples[i] = per_sample == 2 ? (uint16_t)(in[2 * i] | (in[2 * i + 1] << 8)) : in[i];
            }
            qdp_device_push(&dev, samples, count);
            memmove(in, in + count * per_sample, carry - count * per_sample);
            carry -= count * per_sample;
        }
        if (!stdin_open && ring_len == 0 && dev.state != QDP_RUNNING) {
            /* Nothing more will come; keep answering commands until the host closes. */
            if (fds[0].revents & POLLHUP) {
                break;
            }
        }
    }
    close(slave);
    close(master);
    return 0;
}
