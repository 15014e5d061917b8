// SPDX-License-Identifier: MIT
using System;
using System.Runtime.InteropServices;

namespace CustomAutograd.Native;

// Mirror of ca_torch_api; field order is the ABI.
[StructLayout(LayoutKind.Sequential)]
internal struct CaTorchApi
{
    public int StructSize;
    public IntPtr GetAndResetLastErr;
    public IntPtr TensorDispose;
    public IntPtr NodeCtor;
    public IntPtr NodeDisposeSharedPtr;
    public IntPtr NodeDisposeWeakPtr;
    public IntPtr NodeSetNextEdges;
    public IntPtr NodeClearInputMetadata;
    public IntPtr FunctionWrapOutputs;
    public IntPtr SavedVariableCtor;
    public IntPtr SavedVariableDispose;
    public IntPtr SavedVariableUnpack;
    public IntPtr SavedVariableResetData;
    public IntPtr AutogradGrad;
    public IntPtr GetCurrentGraphTaskKeepGraph;
    public IntPtr EngineGetDefaultEngine;
    public IntPtr EngineQueueCallback;
    public IntPtr TensorNumel;
    public IntPtr TensorElementSize;
    public IntPtr TensorDeviceType;
    public IntPtr TensorRequiresGrad;
    public IntPtr AutogradBackward;
    public IntPtr CachingSetCachedTensorsEnabled;
    public IntPtr CachingAddCachedTensor;
    public IntPtr CachingRemoveCachedTensor;
}
