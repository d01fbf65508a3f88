/*
 * edgetrain — umbrella header: include this one from firmware and from the
 * Python binding. Each concern has its own header.
 */
#ifndef EDGETRAIN_EDGETRAIN_H
#define EDGETRAIN_EDGETRAIN_H

#include "et_status.h"
#include "et_fixed.h"
#include "et_maxnorm.h"
#include "et_lrt.h"
#include "et_lga.h"
#include "et_model.h"
#include "et_nvm.h"
#include "et_layers.h"
#include "et_crc.h"
#include "et_commit.h"
#include "et_train.h"
#include "et_plan.h"
#include "et_etm.h"

#endif /* EDGETRAIN_EDGETRAIN_H */
