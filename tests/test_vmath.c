/* The vectorisable maths of src/core/vmath.h against double-precision libm, over dense grids and
 * the special values: the accuracy its header states is what every activation, softmax and
 * decoding score inherits. */
#include <math.h>
#include <stdio.h>

#include "test.h"
#include "vmath.h"

/* largest |f(x) - ref(x)| over n+1 evenly spaced points of [lo, hi]; *at: where */
static double sweep(float (*f)(float), double (*ref)(double), double lo, double hi, int n, int relative, double *at) {
    double worst = 0;
    for (int i = 0; i <= n; i++) {
        float x = (float)(lo + (hi - lo) * i / n);
        double r = ref(x), d = fabs((double)f(x) - r);
        if (relative) d /= fabs(r) > 1e-30 ? fabs(r) : 1e-30;
        if (!(d <= worst)) worst = d, *at = x; /* a NaN result counts as the worst */
    }
    return worst;
}

static float f_erf(float x) { return vlp_erf(x); }
static float f_exp(float x) { return vlp_exp(x); }
static float f_tanh(float x) { return vlp_tanh(x); }
static float f_gelu(float x) { return vlp_gelu_f(x); }
static double r_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static float f_sigmoid(float x) { return vlp_sigmoid(x); }
static double r_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

int main(void) {
    double at = 0, e;
    /* the header's bounds: erf 4e-7 absolute, exp 1e-7 relative, tanh 2e-7 absolute */
    e = sweep(f_erf, erf, -8, 8, 2000000, 0, &at);
    CHECK(e < 4e-7, "erf: max abs error %.3g at %.9g (bound 4e-7)", e, at);
    e = sweep(f_erf, erf, -1e-3, 1e-3, 200000, 1, &at); /* near 0 erf ~ 2x/sqrt(pi): relative accuracy too */
    CHECK(e < 1e-6, "erf near 0: max rel error %.3g at %.9g", e, at);
    e = sweep(f_exp, exp, -87, 88, 2000000, 1, &at);
    CHECK(e < 1e-7 * 2, "exp: max rel error %.3g at %.9g (bound ~1e-7, 2 ulp)", e, at);
    e = sweep(f_tanh, tanh, -90, 90, 2000000, 0, &at);
    CHECK(e < 2e-7, "tanh: max abs error %.3g at %.9g (bound 2e-7)", e, at);
    e = sweep(f_sigmoid, r_sigmoid, -90, 90, 2000000, 0, &at);
    CHECK(e < 2e-7, "sigmoid: max abs error %.3g at %.9g", e, at);
    /* GELU: relative to max(|x|, 1), the scale of its output */
    double worst = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = (float)(-12 + 24.0 * i / 2000000);
        double d = fabs((double)f_gelu(x) - r_gelu(x)) / (fabs(x) > 1 ? fabs(x) : 1);
        if (!(d <= worst)) worst = d, at = x;
    }
    CHECK(worst < 4e-7, "gelu: max error %.3g (relative to max(|x|,1)) at %.9g", worst, at);
    /* special values: saturation, signs, NaN propagation */
    CHECK(vlp_erf(INFINITY) == 1.0f && vlp_erf(-INFINITY) == -1.0f && vlp_erf(0.0f) == 0.0f && vlp_erf(30.0f) == 1.0f,
          "erf(+-inf, 0, 30) = %g %g %g %g", vlp_erf(INFINITY), vlp_erf(-INFINITY), vlp_erf(0.0f), vlp_erf(30.0f));
    CHECK(isnan(vlp_erf(NAN)) && isnan(vlp_gelu_f(NAN)), "erf / gelu of NaN is NaN");
    CHECK(vlp_gelu_f(-30.0f) == 0.0f && vlp_gelu_f(30.0f) == 30.0f, "gelu saturates: %g %g", vlp_gelu_f(-30.0f),
          vlp_gelu_f(30.0f));
    int odd = 1;
    for (int i = 0; i <= 10000; i++) {
        float x = 6.0f * i / 10000;
        odd &= vlp_erf(-x) == -vlp_erf(x);
    }
    CHECK(odd, "erf is odd exactly");
    CHECK(vlp_exp(-200.0f) >= 0.0f && vlp_exp(-200.0f) < 1e-37f && isfinite(vlp_exp(200.0f)),
          "exp clamps: %g %g", vlp_exp(-200.0f), vlp_exp(200.0f));
    return test_finish();
}
