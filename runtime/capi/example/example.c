/* linrt from C: a model from a file's bytes, a session stepped, its state saved and
 * restored, and the streaming recognizer over a WAV file.
 *
 *   cc -std=c11 -O2 -I runtime/capi/include runtime/capi/example/example.c \
 *      target/release/liblinrt_capi.a -lm -lpthread -ldl -o linrt-example
 *   ./linrt-example steps MODEL.lrt 8          # 8 steps of any model, outputs as bits
 *   ./linrt-example asr MODEL.lrt SAMPLE.wav   # a speech model: the final transcripts
 *
 * The runtime allocates nothing: every object lives in memory given here (from
 * malloc on this host; a static buffer on a board). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linrt.h"

static int fail(const char *what, LinrtStatus status) {
    fprintf(stderr, "linrt-example: %s: %s\n", what, linrt_status_text(status));
    return 1;
}

/* The whole file, in a 64-byte aligned buffer (the model's requirement). */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *bytes = aligned_alloc(64, ((size_t)n + 63) / 64 * 64);
    if (bytes && fread(bytes, 1, (size_t)n, f) != (size_t)n) {
        free(bytes);
        bytes = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return bytes;
}

/* The input of step t, value i: exact in any language (integers, one division). */
static float input_value(size_t t, size_t i) {
    return (float)((t * 31 + i * 17) % 97) / 48.5f - 1.0f;
}

/* One step of either kind of model: token (t * 31 + 7) mod vocabulary, or the vector
 * of input_value. */
static LinrtStatus step(LinrtSession *session, const LinrtModelInfo *info, size_t t, float *x, float *y) {
    if (info->input_kind == LINRT_INPUT_KIND_TOKENS)
        return linrt_session_step_token(session, (uint32_t)((t * 31 + 7) % info->input_width), y, info->output_dim);
    for (size_t i = 0; i < info->input_width; i++) x[i] = input_value(t, i);
    return linrt_session_step_vector(session, x, info->input_width, y, info->output_dim);
}

static void print_bits(const char *tag, size_t t, const float *y, size_t n) {
    printf("%s %zu", tag, t);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &y[i], 4);
        printf(" %08" PRIx32, bits);
    }
    printf("\n");
}

static int steps(const LinrtModel *model, size_t count) {
    LinrtModelInfo info;
    LinrtStatus s = linrt_model_info(model, &info);
    if (s != LINRT_STATUS_OK) return fail("model info", s);
    size_t arena_len;
    if ((s = linrt_session_bytes(model, 1, &arena_len)) != LINRT_STATUS_OK) return fail("session size", s);
    void *arena = malloc(arena_len);
    LinrtSession *session;
    if ((s = linrt_session_create(model, 1, arena, arena_len, &session)) != LINRT_STATUS_OK)
        return fail("session", s);
    float *x = malloc(info.input_width * sizeof(float));
    float *y = malloc(info.output_dim * sizeof(float));
    size_t state_len;
    linrt_session_state_bytes(session, &state_len);
    uint8_t *state = malloc(state_len);
    size_t half = count / 2, written = 0;
    for (size_t t = 0; t < count; t++) {
        if (t == half && (s = linrt_session_save_state(session, state, state_len, &written)) != LINRT_STATUS_OK)
            return fail("save state", s);
        if ((s = step(session, &info, t, x, y)) != LINRT_STATUS_OK) return fail("step", s);
        print_bits("step", t, y, info.output_dim);
    }
    /* Back to the middle of the stream: the second half again, bit for bit. */
    if ((s = linrt_session_restore_state(session, state, written)) != LINRT_STATUS_OK) return fail("restore", s);
    for (size_t t = half; t < count; t++) {
        if ((s = step(session, &info, t, x, y)) != LINRT_STATUS_OK) return fail("step", s);
        print_bits("again", t, y, info.output_dim);
    }
    /* A wrong length is an error with a reason, not a crash. */
    s = linrt_session_step_token(session, 0, y, info.output_dim + 1);
    char why[160];
    linrt_session_error(session, why, sizeof why);
    printf("wrong length: %s (%s)\n", linrt_status_text(s), why);
    free(state), free(y), free(x), free(arena);
    return 0;
}

static void on_utterance(void *user, const LinrtUtterance *u) {
    (void)user;
    if (u->kind == LINRT_UTTERANCE_KIND_FINAL)
        printf("[%8.2f \xe2\x80\x93 %8.2f] %.*s\n", u->start, u->end, (int)u->text_len, u->text);
}

/* 16-bit PCM samples of a canonical mono WAV file, as floats in [-1, 1]. */
static float *wav_samples(const char *path, size_t *count) {
    size_t len;
    uint8_t *b = read_file(path, &len);
    if (!b || len < 12 || memcmp(b, "RIFF", 4) || memcmp(b + 8, "WAVE", 4)) return NULL;
    for (size_t at = 12; at + 8 <= len;) {
        uint32_t n = b[at + 4] | b[at + 5] << 8 | b[at + 6] << 16 | (uint32_t)b[at + 7] << 24;
        if (!memcmp(b + at, "data", 4) && at + 8 + n <= len) {
            float *x = malloc(n / 2 * sizeof(float));
            for (size_t i = 0; i < n / 2; i++)
                x[i] = (int16_t)(b[at + 8 + 2 * i] | b[at + 9 + 2 * i] << 8) / 32768.0f;
            *count = n / 2;
            free(b);
            return x;
        }
        at += 8 + n + (n & 1);
    }
    free(b);
    return NULL;
}

static int asr(const LinrtModel *model, const char *wav) {
    size_t count;
    float *samples = wav_samples(wav, &count);
    if (!samples) {
        fprintf(stderr, "linrt-example: %s: not a 16-bit PCM WAV file\n", wav);
        return 1;
    }
    size_t len;
    LinrtStatus s = linrt_recognizer_bytes(model, 16, &len);
    if (s != LINRT_STATUS_OK) return fail("recognizer size", s);
    void *memory = malloc(len);
    LinrtRecognizer *r;
    if ((s = linrt_recognizer_create(model, 16, memory, len, &r)) != LINRT_STATUS_OK) return fail("recognizer", s);
    /* 10 ms at a time, as a microphone delivers it. */
    for (size_t at = 0; at < count; at += 160) {
        size_t n = count - at < 160 ? count - at : 160;
        if ((s = linrt_recognizer_accept(r, samples + at, n, on_utterance, NULL)) != LINRT_STATUS_OK)
            return fail("accept", s);
    }
    if ((s = linrt_recognizer_finish(r, on_utterance, NULL)) != LINRT_STATUS_OK) return fail("finish", s);
    free(memory), free(samples);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "steps") && strcmp(argv[1], "asr"))) {
        fprintf(stderr, "usage: %s steps MODEL.lrt COUNT | asr MODEL.lrt SAMPLE.wav\n", argv[0]);
        return 2;
    }
    size_t len;
    uint8_t *bytes = read_file(argv[2], &len);
    if (!bytes) {
        fprintf(stderr, "linrt-example: cannot read %s\n", argv[2]);
        return 1;
    }
    static uint8_t model_storage[LINRT_MODEL_BYTES];
    LinrtModel *model;
    LinrtStatus s = linrt_model_open(bytes, len, model_storage, sizeof model_storage, &model);
    if (s != LINRT_STATUS_OK) return fail(argv[2], s);
    int rc = strcmp(argv[1], "steps") == 0 ? steps(model, (size_t)strtoul(argv[3], NULL, 10)) : asr(model, argv[3]);
    free(bytes);
    return rc;
}
