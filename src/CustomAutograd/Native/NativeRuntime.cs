// SPDX-License-Identifier: MIT
using System;
using System.IO;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CustomAutograd.Graph;
using TorchSharp;

namespace CustomAutograd.Native;

// Loads the shim, resolves LibTorchSharp's exports (and libtorch's keep-graph query) from the
// libraries TorchSharp already loaded, and registers the callbacks. Runs once per process.
internal static unsafe class NativeRuntime
{
    private const string KeepGraphSymbol = "_ZN5torch8autograd33get_current_graph_task_keep_graphEv";
    private const string GetDefaultEngineSymbol = "_ZN5torch8autograd6Engine18get_default_engineEv";
    private const string QueueCallbackSymbol = "_ZN5torch8autograd6Engine14queue_callbackESt8functionIFvvEE";
    private const string SetCachedTensorsEnabledSymbol = "_ZN2at7caching26set_cached_tensors_enabledEb";
    private const string AddCachedTensorSymbol = "_ZN2at7caching17add_cached_tensorERKNS_6TensorE";
    private const string RemoveCachedTensorSymbol = "_ZN2at7caching20remove_cached_tensorERKNS_6TensorE";
    private const string IsCheckpointValidSymbol = "_ZN5torch8autograd6Engine19is_checkpoint_validEv";

    private static readonly object Gate = new();
    private static volatile bool s_initialized;
    private static Exception? s_failure;

    // LibTorchSharp's THSAutograd_isGradEnabled.
    internal static delegate* unmanaged[SuppressGCTransition]<byte> IsGradEnabledFn;

    // LibTorchSharp's THSAutograd_isAnomalyEnabled.
    private static delegate* unmanaged[SuppressGCTransition]<byte> IsAnomalyEnabledFn;

    // LibTorchSharp's THSAutograd_shouldCheckNaN.
    private static delegate* unmanaged[SuppressGCTransition]<byte> ShouldCheckNaNFn;

    // LibTorchSharp's THSAutograd_setGrad.
    internal static delegate* unmanaged[SuppressGCTransition]<byte, void> SetGradFn;

    // LibTorchSharp's THSTensor_dispose (with a GC transition: freeing may take a while).
    private static delegate* unmanaged<IntPtr, void> DisposeTensorFn;

    // Where the keep-graph query came from, or null when it could not be resolved.
    internal static string? KeepGraphSource { get; private set; }

    // Whether libtorch's Engine::get_default_engine and Engine::queue_callback were both resolved.
    internal static bool EngineCallbackFound { get; private set; }

    // libtorch's Engine::is_checkpoint_valid (a member function: the engine is its only argument) and
    // Engine::get_default_engine, or null when either was not found.
    private static delegate* unmanaged<IntPtr, byte> IsCheckpointValidFn;
    private static delegate* unmanaged<IntPtr> GetDefaultEngineFn;

    // Whether libtorch's at::caching set_cached_tensors_enabled, add_cached_tensor and remove_cached_tensor were all
    // resolved (Note [stealable gradients] in node.cpp).
    internal static bool CachedTensorRegistryFound { get; private set; }

    // The path of the LibTorchSharp library in use.
    internal static string? LibTorchSharpPath { get; private set; }

    // Initialises everything on first use; throws CustomAutogradException with a fix on failure.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void EnsureInitialized()
    {
        if (!s_initialized)
            InitializeSlow();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void InitializeSlow()
    {
        lock (Gate)
        {
            if (s_initialized)
                return;
            if (s_failure is not null)
                throw new CustomAutogradException(s_failure.Message, s_failure);
            try
            {
                Initialize();
                s_initialized = true;
            }
            catch (Exception e)
            {
                s_failure = e;
                throw e as CustomAutogradException ?? new CustomAutogradException(e.Message, e);
            }
        }
    }

    private static void Initialize()
    {
        TorchSharpVersion.Verify();

        // Make TorchSharp load its native libraries (and report its own load errors first).
        LibStdCxxFallback.Apply();
        try
        {
            _ = torch.is_grad_enabled();
        }
        catch (Exception e)
        {
            throw new CustomAutogradException(LibStdCxxFallback.LoadFailureMessage(e), e);
        }

        IntPtr torchSharp = LoadLoaded("libLibTorchSharp.so", out string? torchSharpPath)
                            ?? LoadByName("LibTorchSharp")
                            ?? throw new CustomAutogradException(
                                "CustomAutograd could not find the LibTorchSharp native library that TorchSharp loaded.");
        LibTorchSharpPath = torchSharpPath;

        int version;
        try
        {
            version = NativeMethods.ca_abi_version();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            throw new CustomAutogradException(
                "CustomAutograd's native shim (" + NativeMethods.Library + ") could not be loaded: " + e.Message +
                " It must sit next to CustomAutograd.dll (or under runtimes/<rid>/native/ in a package). Building a " +
                "project that references CustomAutograd builds it with CMake; it needs the C++ runtime only.", e);
        }
        if (version != NativeMethods.AbiVersion)
        {
            throw new CustomAutogradException(
                $"CustomAutograd's native shim has ABI version {version} but this CustomAutograd.dll expects " +
                $"{NativeMethods.AbiVersion}. Rebuild the solution so both come from the same sources.");
        }

        var api = new CaTorchApi
        {
            StructSize = sizeof(CaTorchApi),
            GetAndResetLastErr = Export(torchSharp, "THSTorch_get_and_reset_last_err"),
            TensorDispose = Export(torchSharp, "THSTensor_dispose"),
            NodeCtor = Export(torchSharp, "THSAutograd_CSharpNode_ctor"),
            NodeDisposeSharedPtr = Export(torchSharp, "THSAutograd_CSharpNode_disposeSharedPtr"),
            NodeDisposeWeakPtr = Export(torchSharp, "THSAutograd_CSharpNode_disposeWeakPtr"),
            NodeSetNextEdges = Export(torchSharp, "THSAutograd_CSharpNode_setNextEdges"),
            NodeClearInputMetadata = Export(torchSharp, "THSAutograd_CSharpNode_clearInputMetadata"),
            FunctionWrapOutputs = Export(torchSharp, "THSAutograd_Function_wrapOutputs"),
            SavedVariableCtor = Export(torchSharp, "THSAutograd_SavedVariable_ctor"),
            SavedVariableDispose = Export(torchSharp, "THSAutograd_SavedVariable_dispose"),
            SavedVariableUnpack = Export(torchSharp, "THSAutograd_SavedVariable_unpack"),
            SavedVariableResetData = Export(torchSharp, "THSAutograd_SavedVariable_reset_data"),
            AutogradGrad = Export(torchSharp, "THSAutograd_grad"),
            GetCurrentGraphTaskKeepGraph = ResolveKeepGraph(torchSharp),
            EngineGetDefaultEngine = ResolveTorch(GetDefaultEngineSymbol),
            EngineQueueCallback = ResolveTorch(QueueCallbackSymbol),
            TensorNumel = Export(torchSharp, "THSTensor_numel"),
            TensorElementSize = Export(torchSharp, "THSTensor_element_size"),
            TensorDeviceType = Export(torchSharp, "THSTensor_device_type"),
            TensorRequiresGrad = Export(torchSharp, "THSTensor_requires_grad"),
            AutogradBackward = Export(torchSharp, "THSAutograd_backward"),
        };
        // libtorch's cached-tensor registry lets AccumulateGrad take a Backward's gradient for a leaf without a
        // copy (Note [stealable gradients] in node.cpp); all three or none.
        IntPtr setCached = ResolveTorch(SetCachedTensorsEnabledSymbol), addCached = ResolveTorch(AddCachedTensorSymbol),
               removeCached = ResolveTorch(RemoveCachedTensorSymbol);
        if (setCached != IntPtr.Zero && addCached != IntPtr.Zero && removeCached != IntPtr.Zero)
        {
            api.CachingSetCachedTensorsEnabled = setCached;
            api.CachingAddCachedTensor = addCached;
            api.CachingRemoveCachedTensor = removeCached;
            CachedTensorRegistryFound = true;
        }
        EngineCallbackFound = api.EngineGetDefaultEngine != IntPtr.Zero && api.EngineQueueCallback != IntPtr.Zero;
        IntPtr isCheckpointValid = ResolveTorch(IsCheckpointValidSymbol);
        if (isCheckpointValid != IntPtr.Zero && api.EngineGetDefaultEngine != IntPtr.Zero)
        {
            GetDefaultEngineFn = (delegate* unmanaged<IntPtr>)api.EngineGetDefaultEngine;
            IsCheckpointValidFn = (delegate* unmanaged<IntPtr, byte>)isCheckpointValid;
        }
        DisposeTensorFn = (delegate* unmanaged<IntPtr, void>)api.TensorDispose;
        IsGradEnabledFn = (delegate* unmanaged[SuppressGCTransition]<byte>)Export(torchSharp, "THSAutograd_isGradEnabled");
        SetGradFn = (delegate* unmanaged[SuppressGCTransition]<byte, void>)Export(torchSharp, "THSAutograd_setGrad");
        IsAnomalyEnabledFn = (delegate* unmanaged[SuppressGCTransition]<byte>)Export(torchSharp, "THSAutograd_isAnomalyEnabled");
        ShouldCheckNaNFn = (delegate* unmanaged[SuppressGCTransition]<byte>)Export(torchSharp, "THSAutograd_shouldCheckNaN");
        TensorQueries.NDimension = (delegate* unmanaged[SuppressGCTransition]<IntPtr, long>)Export(torchSharp, "THSTensor_ndimension");
        TensorQueries.SizeAt = (delegate* unmanaged[SuppressGCTransition]<IntPtr, long, long>)Export(torchSharp, "THSTensor_size");
        TensorQueries.RequiresGrad = (delegate* unmanaged[SuppressGCTransition]<IntPtr, byte>)Export(torchSharp, "THSTensor_requires_grad");
        TensorQueries.DeviceTypeOf = (delegate* unmanaged[SuppressGCTransition]<IntPtr, int>)Export(torchSharp, "THSTensor_device_type");
        TensorQueries.DeviceIndexOf = (delegate* unmanaged[SuppressGCTransition]<IntPtr, int>)Export(torchSharp, "THSTensor_device_index");
        TensorQueries.ScalarTypeOf = (delegate* unmanaged[SuppressGCTransition]<IntPtr, sbyte>)Export(torchSharp, "THSTensor_type");

        int status = NativeMethods.ca_init(&api, Trampolines.BackwardPointer, Trampolines.ReleasePointer);
        if (status != NativeMethods.CA_OK)
            throw new CustomAutogradException("CustomAutograd's native shim refused to initialise: " + NativeMethods.LastError());
        TensorLayoutCheck.Bind(Export(torchSharp, "THSTensor_newInt64Scalar"), Export(torchSharp, "THSTensor_contiguous"),
                               api.GetAndResetLastErr);
        TensorLayoutCheck.Run();

        AppDomain.CurrentDomain.ProcessExit += static (_, _) => NativeMethods.ca_shutdown();
        Diagnostics.Log.NativeLoaded(torchSharpPath ?? "LibTorchSharp", KeepGraphSource ?? "(not found)");
    }

    private static IntPtr ResolveKeepGraph(IntPtr torchSharp)
    {
        // libtorch_cpu exports it; LibTorchSharp's global symbol scope may also see it.
        if (LoadLoaded("libtorch_cpu.so", out string? path) is IntPtr torchCpu &&
            NativeLibrary.TryGetExport(torchCpu, KeepGraphSymbol, out IntPtr fn))
        {
            KeepGraphSource = path;
            return fn;
        }
        if (NativeLibrary.TryGetExport(torchSharp, KeepGraphSymbol, out fn))
        {
            KeepGraphSource = "LibTorchSharp";
            return fn;
        }
        // Without it saved tensors live until the node dies; correct, but memory is held longer.
        Diagnostics.Log.KeepGraphMissing();
        return IntPtr.Zero;
    }

    // Whether libtorch's Engine::is_checkpoint_valid was resolved.
    internal static bool CheckpointValidityFound => IsCheckpointValidFn != null;

    // Whether the backward pass running on this thread may run a re-entrant checkpoint's backward() (libtorch's
    // Engine::is_checkpoint_valid: false inside autograd.grad and inside a backward given `inputs`, whose graph task
    // runs only part of the graph); null when libtorch does not export it.
    internal static bool? IsCheckpointValid()
    {
        EnsureInitialized();
        if (IsCheckpointValidFn == null)
            return null;
        return IsCheckpointValidFn(GetDefaultEngineFn()) != 0;
    }

    // An optional libtorch export (IntPtr.Zero when absent: the shim then falls back).
    private static IntPtr ResolveTorch(string symbol)
    {
        if (LoadLoaded("libtorch_cpu.so", out _) is IntPtr torchCpu && NativeLibrary.TryGetExport(torchCpu, symbol, out IntPtr fn))
            return fn;
        return IntPtr.Zero;
    }

    // A required LibTorchSharp export; throws CustomAutogradException naming it when absent.
    internal static IntPtr Export(IntPtr library, string name)
    {
        if (NativeLibrary.TryGetExport(library, name, out IntPtr address))
            return address;
        throw new CustomAutogradException(
            $"The loaded LibTorchSharp does not export '{name}'. CustomAutograd needs TorchSharp 0.107.0 exactly.");
    }

    // Opens (by path, so the very same copy) a library this process has already mapped.
    private static IntPtr? LoadLoaded(string fileName, out string? path)
    {
        path = null;
        if (!OperatingSystem.IsLinux())
            return null;
        try
        {
            foreach (string line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/', StringComparison.Ordinal);
                if (slash < 0 || !line.EndsWith("/" + fileName, StringComparison.Ordinal))
                    continue;
                string candidate = line.Substring(slash);
                if (NativeLibrary.TryLoad(candidate, out IntPtr handle))
                {
                    path = candidate;
                    return handle;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return null;
    }

    private static IntPtr? LoadByName(string name) =>
        NativeLibrary.TryLoad(name, typeof(torch).Assembly, null, out IntPtr handle) ? handle : null;

    // Reads the shim's counters.
    internal static CaStats ReadStats()
    {
        EnsureInitialized();
        CaStats stats;
        NativeMethods.ca_get_stats(&stats);
        return stats;
    }

    // Interns a function name for the native side's error messages.
    internal static IntPtr Intern(string name)
    {
        EnsureInitialized();
        fixed (byte* p = NativeMethods.ToUtf8Z(name))
        {
            IntPtr interned = NativeMethods.ca_intern(p);
            if (interned == IntPtr.Zero)
                throw new CustomAutogradException("CustomAutograd could not store the function name (out of memory).");
            return interned;
        }
    }

    // Releases a tensor handle (LibTorchSharp's THSTensor_dispose).
    internal static void DisposeTensorHandle(IntPtr handle) => DisposeTensorFn(handle);

    // Current grad mode, read from libtorch without allocating.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool IsGradEnabled() => IsGradEnabledFn() != 0;

    // Whether anomaly detection with NaN checks is on (thread-local in libtorch, as grad mode).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool ShouldCheckNaN() => IsAnomalyEnabledFn() != 0 && ShouldCheckNaNFn() != 0;

    // Sets grad mode on this thread without allocating.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void SetGradEnabled(bool enabled) => SetGradFn(enabled ? (byte)1 : (byte)0);

}
