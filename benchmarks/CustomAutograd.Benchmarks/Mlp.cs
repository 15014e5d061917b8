// SPDX-License-Identifier: MIT
using System;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>How a training step leaves the gradients after the update.</summary>
public enum GradReset
{
    /// <summary>Set to none, as <c>zero_grad()</c> does by default: every backward starts from an empty <c>.grad</c>.</summary>
    None,

    /// <summary>Zeroed in place with <c>zero_()</c>: every backward adds into the existing <c>.grad</c>.</summary>
    Zero,
}

/// <summary>
/// A multilayer perceptron of <see cref="Layers"/> Linear layers (leaf weights <c>[width, width]</c> and biases),
/// ReLU between them, squared-error loss summed, plain SGD. The layers are passed in, so the same model runs with
/// built-in layers, custom functions, or by hand.
/// </summary>
internal sealed class Mlp : IDisposable
{
    public const int Layers = 4;
    private const double LearningRate = 1e-6;

    private readonly Tensor _input, _target;
    private readonly Tensor[] _weights = new Tensor[Layers], _biases = new Tensor[Layers];

    /// <summary>Creates the data and parameters (the same for every instance of a size: fixed seed).</summary>
    public Mlp(int batch, int width, GradReset reset)
    {
        torch.manual_seed(Setup.Seed);
        Device device = Setup.Device;
        _input = randn(new long[] { batch, width }, dtype: ScalarType.Float32, device: device);
        _target = randn(new long[] { batch, width }, dtype: ScalarType.Float32, device: device);
        double bound = 1 / Math.Sqrt(width);  // nn.Linear's initialisation
        for (int l = 0; l < Layers; l++)
        {
            _weights[l] = empty(new long[] { width, width }, dtype: ScalarType.Float32, device: device).uniform_(-bound, bound).requires_grad_();
            _biases[l] = empty(new long[] { width }, dtype: ScalarType.Float32, device: device).uniform_(-bound, bound).requires_grad_();
        }
        if (reset == GradReset.Zero)
        {
            foreach (Tensor p in Parameters)
                p.grad = zeros_like(p);
        }
    }

    /// <summary>Weights and biases, layer by layer.</summary>
    public Tensor[] Parameters
    {
        get
        {
            var all = new Tensor[2 * Layers];
            for (int l = 0; l < Layers; l++)
            {
                all[2 * l] = _weights[l];
                all[2 * l + 1] = _biases[l];
            }
            return all;
        }
    }

    /// <summary>The forward pass and the loss, with the given layers (in the caller's dispose scope).</summary>
    public Tensor Loss(Func<Tensor, Tensor, Tensor?, Tensor> linear, Func<Tensor, Tensor> relu)
    {
        Tensor h = _input;
        for (int l = 0; l < Layers; l++)
        {
            h = linear(h, _weights[l], _biases[l]);
            if (l < Layers - 1)
                h = relu(h);
        }
        return (h - _target).pow(2).sum();
    }

    /// <summary>
    /// The forward pass, the loss and the gradients by hand under no_grad, with the tensor ops of
    /// <see cref="Functions.Linear"/> and <see cref="Functions.Relu"/> and those libtorch's engine runs for the loss,
    /// accumulated into <c>.grad</c> as AccumulateGrad does. Temporaries are freed as soon as they are used, as the
    /// engine frees a gradient once the next node has consumed it; the forward's outputs stay with the caller's
    /// dispose scope, as in the autograd rows.
    /// </summary>
    public void BackwardByHand(GradReset reset)
    {
        using var noGrad = no_grad();
        var inputs = new Tensor[Layers];
        var preActivations = new Tensor[Layers];
        Tensor h = _input;
        for (int l = 0; l < Layers; l++)
        {
            inputs[l] = h;
            using (Tensor product = h.mm(_weights[l].t()))
                preActivations[l] = product + _biases[l];
            h = l < Layers - 1 ? preActivations[l].clamp_min(0) : preActivations[l];
        }
        Tensor d = h - _target;
        Tensor loss = d.pow(2).sum();
        // What the engine runs for pow(2).sum(): SumBackward0 expands the scalar one, PowBackward0 computes
        // grad * (2 * d.pow(1)), SubBackward0 passes it on.
        Tensor g;
        using (Tensor one = ones(Array.Empty<long>(), dtype: d.dtype, device: d.device))
        using (Tensor d1 = d.pow(1.0))
        using (Tensor twice = 2.0 * d1)
            g = one.expand(d.shape) * twice;
        for (int l = Layers - 1; l >= 0; l--)
        {
            if (l < Layers - 1)
            {
                using Tensor negative = preActivations[l] < 0;
                Tensor masked = g.masked_fill(negative, 0);
                g.Dispose();
                g = masked;
            }
            using (Tensor gt = g.t())
                Accumulate(_weights[l], gt.mm(inputs[l]), reset);
            Accumulate(_biases[l], g.sum(0L), reset);
            if (l > 0)
            {
                Tensor next = g.mm(_weights[l]);
                g.Dispose();
                g = next;
            }
        }
        g.Dispose();
        GC.KeepAlive(loss);
    }

    private static void Accumulate(Tensor parameter, Tensor grad, GradReset reset)
    {
        if (reset == GradReset.None)
        {
            parameter.grad = grad;  // as AccumulateGrad takes a gradient nothing else references
            grad.Dispose();         // the handle only: .grad keeps the tensor
            return;
        }
        using (Tensor current = parameter.grad!)
            current.add_(grad);
        grad.Dispose();
    }

    /// <summary>The SGD update, then the gradient reset.</summary>
    public void Update(GradReset reset)
    {
        using var noGrad = no_grad();
        foreach (Tensor p in Parameters)
        {
            using Tensor grad = p.grad!;
            p.add_(grad, -LearningRate);
            if (reset == GradReset.Zero)
                grad.zero_();
            else
                p.grad = null;
        }
    }

    /// <summary>Frees the data and parameters.</summary>
    public void Dispose()
    {
        _input.Dispose();
        _target.Dispose();
        foreach (Tensor p in Parameters)
            p.Dispose();
    }
}
