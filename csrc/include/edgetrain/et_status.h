/*
 * edgetrain — status codes.
 *
 * Every entry point of the core returns an et_status_t: ET_OK (0) on success,
 * a negative code otherwise. Functions that fail change nothing the caller
 * can observe (arguments are checked before anything is written).
 */
#ifndef EDGETRAIN_ET_STATUS_H
#define EDGETRAIN_ET_STATUS_H

typedef enum {
    ET_OK = 0,
    ET_ERR_ARG = -1,         /* an argument is NULL, out of its documented range, or inconsistent */
    ET_ERR_NOMEM = -2,       /* the caller's buffer is smaller than the planned size */
    ET_ERR_CORRUPT = -3,     /* stored data fails its checks (magic, CRC, offsets) */
    ET_ERR_VERSION = -4,     /* stored data has a format version this build does not read */
    ET_ERR_RANGE = -5,       /* a value does not fit the numeric format it must be stored in */
    ET_ERR_IO = -6,          /* the NVM HAL reported a failed program or erase */
    ET_ERR_UNSUPPORTED = -7, /* a valid request this build does not implement */
    ET_ERR_STATE = -8,       /* the call is not allowed in the object's current state */
    ET_ERR_WORN = -9         /* verify-after-write found cells that no longer take a value */
} et_status_t;

/* Short upper-case name of a status ("ET_ERR_ARG"); "ET_ERR_UNKNOWN" for other values. */
const char *et_status_name(int status);

#endif /* EDGETRAIN_ET_STATUS_H */
