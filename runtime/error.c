/* error.c — the last error of each thread, and errors raised inside tasks. */
#include "tg_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];
static _Thread_local char last_where[256];

const char *tg_last_error_where(void)
{
	return last_where;
}

const char *tg_last_error(void)
{
	return last_error;
}

void tg_clear_error(void)
{
	last_error[0] = '\0';
	last_where[0] = '\0';
}

const char *tg_short_path(const char *path, char *buf, size_t size)
{
	if (!buf || size == 0)
		return "";
	size_t len = path ? strlen(path) : 0;
	if (len < size) {
		memcpy(buf, path ? path : "", len + 1);
		return buf;
	}
	/* the start and the end, which say where and what; "..." for the middle */
	size_t keep = size > 4 ? size - 4 : 0, head = keep / 2, tail = keep - head;
	memcpy(buf, path, head);
	memcpy(buf + head, "...", size > 4 ? 3 : 0);
	memcpy(buf + head + (size > 4 ? 3 : 0), path + len - tail, tail);
	buf[size > 4 ? size - 1 : 0] = '\0';
	return buf;
}

const char *tg_strerror(int code)
{
	switch (code) {
	case TG_OK: return "success";
	case TG_EINVAL: return "invalid argument";
	case TG_ESHAPE: return "shape error";
	case TG_ENOMEM: return "out of memory";
	case TG_ESTATE: return "wrong state";
	case TG_ESTARPU: return "StarPU error";
	case TG_ENODEV: return "no worker can run it";
	case TG_EIO: return "I/O error";
	case TG_ECUDA: return "CUDA error";
	case TG_ENUMERIC: return "non-finite number";
	case TG_ENOTSUP: return "not supported";
	default: return "unknown error";
	}
}

int tg_set_error_at(const char *file, int line, int code, const char *fmt, ...)
{
	snprintf(last_where, sizeof last_where, "%s:%d", file ? file : "?", line);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	return code;
}

/* Errors from inside tasks: the first one wins until it is taken. */
static pthread_mutex_t async_lock = PTHREAD_MUTEX_INITIALIZER;
static int async_code;
static char async_msg[1024];

void tg_task_error_at(const char *file, int line, int code, const char *fmt, ...)
{
	pthread_mutex_lock(&async_lock);
	if (async_code == 0) {
		char msg[800];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		snprintf(async_msg, sizeof async_msg, "%s (in a task, %s:%d)", msg, file, line);
		async_code = code;
	}
	pthread_mutex_unlock(&async_lock);
}

int tg_async_error_take(void)
{
	pthread_mutex_lock(&async_lock);
	int code = async_code;
	if (code)
		snprintf(last_error, sizeof last_error, "%s", async_msg);
	async_code = 0;
	async_msg[0] = '\0';
	pthread_mutex_unlock(&async_lock);
	return code;
}
