/* io.c — files are written whole or not at all. */
#include "tg_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tg_write_file_atomic(const char *path, int (*write)(FILE *f, void *ctx), void *ctx)
{
	TG_CHECK(path && *path, TG_EINVAL, "no output path given");
	size_t len = strlen(path);
	char *tmp = malloc(len + 16);
	TG_CHECK(tmp, TG_ENOMEM, "out of memory");
	snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		int e = errno;
		free(tmp);
		return tg_error(TG_EIO, "cannot write '%s': %s", path, strerror(e));
	}
	/* mkstemp makes the file private; give it the permissions a plain fopen would. */
	mode_t mask = umask(0);
	umask(mask);
	(void)fchmod(fd, 0666 & ~mask);
	FILE *f = fdopen(fd, "w");
	int rc;
	if (!f) {
		rc = tg_error(TG_EIO, "cannot write '%s': %s", path, strerror(errno));
		close(fd);
	} else {
		rc = write(f, ctx);
		if (rc == 0 && (fflush(f) != 0 || ferror(f) || fsync(fd) != 0))
			rc = tg_error(TG_EIO, "cannot write '%s': %s", path, strerror(errno));
		if (fclose(f) != 0 && rc == 0)
			rc = tg_error(TG_EIO, "cannot write '%s': %s", path, strerror(errno));
	}
	if (rc == 0 && rename(tmp, path) != 0)
		rc = tg_error(TG_EIO, "cannot write '%s': %s", path, strerror(errno));
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	return rc;
}
