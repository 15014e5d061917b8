// SPDX-License-Identifier: MIT
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>What every benchmark class does in its global setup, and the device the run uses.</summary>
internal static class Setup
{
    /// <summary>The seed of every input.</summary>
    public const long Seed = 7;

    /// <summary>The device every benchmark's tensors live on (<c>--device cuda</c>; the CPU by default).</summary>
    public static Device Device { get; private set; } = torch.CPU;

    /// <summary>Whether the run is on CUDA (then every operation ends with a device synchronisation).</summary>
    public static bool OnCuda { get; private set; }

    /// <summary>Selects the device for the whole run (before any benchmark starts).</summary>
    /// <param name="cuda">Run on <c>cuda:0</c>.</param>
    public static void UseDevice(bool cuda)
    {
        if (cuda)
            torch.InitializeDeviceType(DeviceType.CUDA);
        OnCuda = cuda;
        Device = cuda ? torch.CUDA : torch.CPU;
    }

    /// <summary>
    /// Ends an operation: on CUDA waits until the device has finished it, so that a row's time is the device's
    /// work and not only the launch of its kernels; nothing on the CPU.
    /// </summary>
    public static void Sync()
    {
        if (OnCuda)
            torch.cuda.synchronize();
    }

    /// <summary>One intra-op thread (the numbers compare per-call overheads, not parallel kernels) and a fixed seed.</summary>
    public static void Global()
    {
        torch.set_num_threads(1);
        torch.manual_seed(Seed);
    }

    /// <summary>A float32 leaf that requires grad and already has a (zero) gradient, so every step accumulates in place.</summary>
    /// <param name="shape">The shape.</param>
    /// <returns>The leaf, on <see cref="Device"/>, outside any dispose scope.</returns>
    public static Tensor Leaf(params long[] shape)
    {
        Tensor x = randn(shape, dtype: ScalarType.Float32, device: Device, requires_grad: true);
        using (var scope = NewDisposeScope())
        {
            x.sum().backward();
            x.grad!.zero_();
        }
        return x;
    }
}
