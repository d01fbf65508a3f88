/*
 * edgetrain — CRC-32, four bits at a time (et_crc.h).
 */
#include "edgetrain/et_crc.h"

#include <stddef.h>

/* Entry i: the register after shifting the four-bit value i out, LSB first. */
static const uint32_t et_crc32_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

et_status_t et_crc32(uint32_t *crc, const uint8_t *data, uint32_t len)
{
    uint32_t reg;
    uint32_t i;
    if (crc == NULL || (data == NULL && len != 0)) {
        return ET_ERR_ARG;
    }
    reg = ~*crc;
    for (i = 0; i < len; i++) {
        reg ^= data[i];
        reg = (reg >> 4) ^ et_crc32_nibble[reg & 0xFu];
        reg = (reg >> 4) ^ et_crc32_nibble[reg & 0xFu];
    }
    *crc = ~reg;
    return ET_OK;
}
