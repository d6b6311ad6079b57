#include "json_file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "internal.h"

static int dump_cb(const char *buf, size_t size, void *fd) {
    while (size) {
        ssize_t w = write(*(int *)fd, buf, size);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w, size -= (size_t)w;
    }
    return 0;
}

int vlp_json_save_atomic(json_t *root, const char *path) {
    if (!root) {
        vlp_set_error("%s: cannot build the JSON (out of memory)", path);
        return VLP_ERR_NOMEM;
    }
    char tmp[4300];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) {
        json_decref(root);
        vlp_set_error("%s: path too long", path);
        return VLP_ERR_ARG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -1 : json_dump_callback(root, dump_cb, &fd, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc == 0) rc = dump_cb("\n", 1, &fd);
    if (rc == 0 && fsync(fd)) rc = -1;
    int err = errno;
    if (fd >= 0 && close(fd) && rc == 0) rc = -1, err = errno;
    if (rc == 0 && rename(tmp, path)) rc = -1, err = errno;
    if (rc) {
        vlp_set_error("%s: cannot write: %s", path, strerror(err));
        unlink(tmp);
        return VLP_ERR_IO;
    }
    return VLP_OK;
}

json_t *vlp_json_load_config(const char *path, const char *fn, int *rc) {
    *rc = VLP_ERR_ARG;
    if (!path) {
        vlp_set_error("%s: NULL argument", fn);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        vlp_set_error("%s: %s (line %d)", path, jerr.text, jerr.line);
        *rc = VLP_ERR_IO;
        return NULL;
    }
    if (!json_is_object(root)) {
        vlp_set_error("%s: a config must be a JSON object", path);
        json_decref(root);
        return NULL;
    }
    *rc = VLP_OK;
    return root;
}
