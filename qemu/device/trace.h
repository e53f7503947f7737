#include "trace/trace-hw_misc_refnpu.h"
