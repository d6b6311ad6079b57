/* Single-thread GEMM efficiency that a loaded machine cannot distort much: every time is the
 * calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), best of reps, against an FMA peak measured
 * the same way. Shapes: bench/gemm_shapes.c's (ViT-B/32 batch 32 and 1, small-ViT training)
 * plus per-head attention GEMMs. For tuning the micro-kernel and blocking (gemm.c's VLP_* knobs).
 *
 *   build/bench/gemm_cpu [REPS [SUBSTRING]]      e.g. gemm_cpu 5 vitb */
#include "gemm.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double cpu_s(void){struct timespec ts;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&ts);return ts.tv_sec+1e-9*ts.tv_nsec;}
__attribute__((target("avx512f"),noinline)) static float peakrun(long it){
  __m512 a[12]; for(int i=0;i<12;i++)a[i]=_mm512_set1_ps(i*1e-3f);
  const __m512 x=_mm512_set1_ps(0.999999f),y=_mm512_set1_ps(1e-7f);
  for(long k=0;k<it;k++){
#pragma GCC unroll 12
    for(int i=0;i<12;i++)a[i]=_mm512_fmadd_ps(a[i],x,y);
    __asm__ volatile(""::"v"(a[0]),"v"(a[1]),"v"(a[2]),"v"(a[3]),"v"(a[4]),"v"(a[5]),"v"(a[6]),"v"(a[7]),"v"(a[8]),"v"(a[9]),"v"(a[10]),"v"(a[11]));
  }
  __m512 s=a[0]; for(int i=1;i<12;i++)s=_mm512_add_ps(s,a[i]); return _mm512_reduce_add_ps(s);
}
int main(int argc,char**argv){
  int reps=argc>1?atoi(argv[1]):5;
  const char*filter=argc>2?argv[2]:NULL;
  double best=1e9; volatile float sink; (void)sink;
  for(int r=0;r<5;r++){double t0=cpu_s();sink=peakrun(5000000);double t=cpu_s()-t0;if(t<best)best=t;}
  double peak=5000000.0*12*32/best/1e9;
  printf("peak1 %.1f GF/s\n",peak);
  struct {const char*w;int ta,tb,M,N,K;} sh[]={
   {"vitb qkv NT",0,1,1600,2304,768},{"vitb fc1 NT",0,1,1600,3072,768},{"vitb fc2 NT",0,1,1600,768,3072},
   {"vitb fc1dx NN",0,0,1600,768,3072},{"vitb fc1dW TN",1,0,3072,768,1600},
   {"b1 qkv NT",0,1,50,2304,768},{"b1 fc1 NT",0,1,50,3072,768},{"b1 fc2 NT",0,1,50,768,3072},
   {"s128 qkv NT",0,1,16640,384,128},{"s128 fc1 NT",0,1,16640,512,128},{"s128 fc2 NT",0,1,16640,128,512},
   {"s128 fc2dx NN",0,0,16640,512,128},{"s128 fc1dW TN",1,0,512,128,16640},{"s128 outdW TN",1,0,128,128,16640},
   {"s256 fc1 NT",0,1,16640,1024,256},{"s256 fc1dW TN",1,0,1024,256,16640},
   {"s512 fc1 NT",0,1,16640,2048,512},{"s512 fc2 NT",0,1,16640,512,2048},{"s512 fc1dW TN",1,0,2048,512,16640},
   {"attn QK 50",0,1,50,50,64},{"attn PV 50",0,0,50,64,50},{"attn QK 65",0,1,65,65,64},{"attn PV 65",0,0,65,64,65},
   {"attn dV 65 TN",1,0,65,64,65},
  };
  int n=sizeof sh/sizeof sh[0];
  for(int s=0;s<n;s++){
    if(filter&&!strstr(sh[s].w,filter))continue;
    int ta=sh[s].ta,tb=sh[s].tb,M=sh[s].M,N=sh[s].N,K=sh[s].K;
    size_t na=(size_t)M*K,nb=(size_t)K*N,nc=(size_t)M*N;
    float*A=aligned_alloc(64,na*4+64),*B=aligned_alloc(64,nb*4+64),*C=aligned_alloc(64,nc*4+64);
    for(size_t i=0;i<na;i++)A[i]=(float)((i*7)%13)*0.01f;
    for(size_t i=0;i<nb;i++)B[i]=(float)((i*5)%11)*0.01f;
    int lda=ta?M:K,ldb=tb?K:N;
    double fl=2.0*M*N*K; int inner=(int)(2e8/fl)+1;
    vlp_gemm_st(ta,tb,M,N,K,1,A,lda,B,ldb,0,C,N);
    double bt=1e9; int R=reps>64?64:reps;
    for(int r=0;r<R;r++){double t0=cpu_s();for(int i=0;i<inner;i++)vlp_gemm_st(ta,tb,M,N,K,1,A,lda,B,ldb,0,C,N);double t=(cpu_s()-t0)/inner;if(t<bt)bt=t;}
    printf("%-16s %s%s %5d %5d %5d  %6.1f GF/s %5.1f%%\n",sh[s].w,ta?"T":"N",tb?"T":"N",M,N,K,fl/bt/1e9,100*fl/bt/1e9/peak);
    free(A);free(B);free(C);
  }
  return 0;
}
