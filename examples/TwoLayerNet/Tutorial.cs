// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Examples;

/// <summary>The tutorial's model and training loop.</summary>
public static class Tutorial
{
    /// <summary>Batch size, input, hidden and output widths of the vignette.</summary>
    public const int N = 64, DIn = 1000, H = 100, DOut = 10;

    /// <summary>The vignette's learning rate.</summary>
    public const double LearningRate = 1e-6;

    // The numbers the loop hands to libtorch, as Scalars made once: TorchSharp 0.107 does not keep a Scalar it makes
    // from a number alive during the native call, so in a loop a garbage collection started by another thread can
    // free one mid-call (docs/user-guide.md, Threads).
    private static readonly Scalar Zero = 0.ToScalar(), Two = 2.ToScalar(), Rate = LearningRate.ToScalar();

    /// <summary>
    /// The custom ReLU of the vignette: save the input, clamp in forward, mask the gradient in backward.
    /// </summary>
    public static UnaryFunction MyRelu { get; } = AutogradFunction.Create(
        "MyReLU",
        forward: (ctx, input) =>
        {
            ctx.SaveForBackward("input", input);
            return input.clamp(min: Zero);
        },
        backward: (ctx, gradOutput) =>
        {
            Tensor input = ctx.Saved["input"]!;
            Tensor gradInput = gradOutput.clone();
            gradInput[input < Zero] = 0;
            return gradInput;
        });

    /// <summary>Trains the two-layer network and prints <c>Step: t : loss</c> at step 1 and every 100 steps.</summary>
    /// <param name="options">Device, seed and number of steps.</param>
    /// <param name="output">Where the step lines go.</param>
    /// <param name="onStep">Called after each step with its number (e.g. to move a progress bar).</param>
    /// <returns>The loss of every step.</returns>
    public static IReadOnlyList<double> Run(TutorialOptions options, TextWriter output, Action<int>? onStep = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        Device device = options.Device == "cuda" ? TutorialOptions.CudaDevice() : CPU;
        torch.manual_seed(options.Seed);
        ScalarType dtype = ScalarType.Float32;

        using var scope = NewDisposeScope();
        Tensor x = randn(N, DIn, dtype: dtype, device: device);
        Tensor y = randn(N, DOut, dtype: dtype, device: device);
        Tensor w1 = randn(DIn, H, dtype: dtype, device: device, requires_grad: true);
        Tensor w2 = randn(H, DOut, dtype: dtype, device: device, requires_grad: true);

        var losses = new List<double>(options.Steps);
        for (int t = 1; t <= options.Steps; t++)
        {
            using var step = NewDisposeScope();
            Tensor yPred = MyRelu.Apply(x.mm(w1)).mm(w2);
            Tensor loss = (yPred - y).pow(Two).sum();
            double value = loss.item<float>();
            losses.Add(value);
            if (t % 100 == 0 || t == 1)
                output.WriteLine($"Step: {t} : {RFormat.Number(value)}");

            loss.backward();

            using (no_grad())
            {
                w1.sub_(Rate * w1.grad!);
                w2.sub_(Rate * w2.grad!);
                w1.grad!.zero_();
                w2.grad!.zero_();
            }
            onStep?.Invoke(t);
        }
        return losses;
    }
}
